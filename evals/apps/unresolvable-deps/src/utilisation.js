export function utilisation(trips, vehicles, hours = 24) {
  const busy = trips.reduce((sum, trip) => sum + trip.hours, 0);
  return vehicles ? busy / (vehicles * hours) : 0;
}

export function byDepot(trips, fleet) {
  return Object.entries(fleet).map(([depot, vehicles]) => ({
    depot,
    utilisation: utilisation(trips.filter((t) => t.depot === depot), vehicles),
  }));
}
