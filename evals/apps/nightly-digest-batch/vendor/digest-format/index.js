export function percent(value) {
  return `${(value * 100).toFixed(1)}%`;
}

export function signed(value) {
  return value > 0 ? `+${value}` : String(value);
}
