import { readFileSync } from 'node:fs';
import { percent, signed } from 'digest-format';

export function loadKpis(path = new URL('../data/kpis.json', import.meta.url)) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function summarize(rows) {
  return rows.map((row) => ({
    kpi: row.kpi,
    change: signed(row.today - row.yesterday),
    ofTarget: percent(row.today / row.target),
    onTarget: row.today >= row.target,
  }));
}

export function renderHtml(summary) {
  const items = summary
    .map((s) => `<li>${s.kpi}: ${s.change} (${s.ofTarget} of target)</li>`)
    .join('\n');
  return `<!doctype html>\n<h1>Nightly digest</h1>\n<ul>\n${items}\n</ul>\n`;
}

export function missedTargets(summary) {
  const missed = summary.filter((s) => !s.onTarget);
  if (missed.length === 0) {
    return 'All KPIs on target.';
  }
  return `Missed: ${missed.map((s) => s.kpi).join(', ')}`;
}

export function subjectLine(summary, day) {
  if (!day) {
    throw new Error('day is required');
  }
  const missed = summary.filter((s) => !s.onTarget).length;
  return missed ? `[digest ${day}] ${missed} KPI(s) off target` : `[digest ${day}] all green`;
}
