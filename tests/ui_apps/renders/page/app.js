fetch('/api/items')
  .then((res) => res.json())
  .then((items) => {
    document.querySelector('#items').innerHTML = items
      .map((item) => `<li>${item.name}: $${item.price}</li>`)
      .join('');
  });
