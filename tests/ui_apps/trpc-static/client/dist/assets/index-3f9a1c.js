// A prebuilt single-page app: it asks the server through the /api proxy, as in production.
const root = document.getElementById('root');
const items = await (await fetch('/api/items')).json();
root.innerHTML = `<h1>Garden planner</h1><p>${items.length} things to plant</p>`
  + `<svg width="120" height="40"><rect width="120" height="40" fill="#3a7d44"/></svg>`;
