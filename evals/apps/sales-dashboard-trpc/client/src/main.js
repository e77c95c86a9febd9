async function query(name) {
  const res = await fetch(`/api/trpc/${name}`);
  if (!res.ok) throw new Error(`${name} failed: ${res.status}`);
  return (await res.json()).result.data;
}

async function render() {
  const sales = await query('getSales');
  document.querySelector('#sales tbody').innerHTML = sales
    .map((r) => `<tr><td>${r.region}</td><td>${r.orders}</td><td>$${r.revenue.toFixed(2)}</td></tr>`)
    .join('');
  const top = await query('getTopProducts');
  document.querySelector('#top-products').innerHTML = top
    .map((p) => `<li>${p.product} (${p.units_sold} units)</li>`)
    .join('');
}

render().catch((err) => {
  document.body.insertAdjacentHTML('beforeend', `<p class="error">${err.message}</p>`);
});
