// Generates services/deadlines/data/calendars.json (rogatory.deadlines.v1.CalendarsFile in
// protobuf's JSON mapping) from the npm package date-holidays, pinned in package.json.
//
//   cd tools/calendars && npm ci && node generate.mjs [--check]
//
// --check writes nothing and exits 1 if the checked-in file differs from what it would write
// (ctest's deadlines_calendars_generated_test). date-holidays is taken from
// tools/calendars/node_modules, else from $ROGATORY_TOOLS_DIR/node_modules (default
// /opt/rogatory-tools, where deploy/install-deps.sh puts it); its version must be the one
// pinned in package.json.
//
// What it does, per state that the routing registry names (and each of its date-holidays
// regions, with the ISO 3166-2 code "<state>-<region>"):
// - keeps only holidays of type "public" that last the whole day (Iceland's Christmas Eve
//   and New Year's Eve from 13:00 are half days: offices are open in the morning);
// - computes every such holiday for each year of YEARS and classifies it by its dates, not
//   by parsing date-holidays' rule text:
//     fixed month/day in every year it occurs            -> {month, day}
//     a constant offset from (Western or Orthodox) Easter -> {easterRelative, easterOffset}
//     anything else (1st Monday in May, substitute days, moved dates)
//                                                        -> one dated entry per year
//                                                           {month, day, firstYear = lastYear}
//   A holiday that occurs only in some years of YEARS carries firstYear / lastYear; one that
//   occurs from the first to the last year of YEARS carries neither (it is taken to hold
//   outside the range too; counting beyond YEARS is flagged anyway, see calendar.h).
// - a region gets the holidays that it has and the whole state does not (holiday.regions),
//   and loses the state's holidays that it does not keep (holiday.exceptRegions);
// - declares coveredFromYear / coveredToYear = YEARS and its source.
//
// Output is deterministic (no clock, sorted), so re-running reproduces the checked-in file.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PINNED = JSON.parse(fs.readFileSync(path.join(HERE, 'package.json'), 'utf8'))
  .dependencies['date-holidays'];
const require = (() => {
  const toolsDir = process.env.ROGATORY_TOOLS_DIR || '/opt/rogatory-tools';
  for (const base of [HERE, toolsDir]) {
    const req = createRequire(path.join(base, 'package.json'));
    try {
      req.resolve('date-holidays');
      return req;
    } catch {
      // not here; try the next place
    }
  }
  console.error(`date-holidays ${PINNED} not found in ${HERE}/node_modules nor ` +
      `${toolsDir}/node_modules: run npm ci in tools/calendars or deploy/install-deps.sh`);
  process.exit(2);
})();
const Holidays = require('date-holidays');
const PKG_VERSION = require('date-holidays/package.json').version;
if (PKG_VERSION !== PINNED) {
  console.error(`date-holidays ${PKG_VERSION} found, ${PINNED} pinned in package.json`);
  process.exit(2);
}
const OUT = path.resolve(HERE, '../../services/deadlines/data/calendars.json');
const REGISTRY = path.resolve(HERE, '../../services/routing/data/declarations.json');

// The years the dated entries cover. Fixed here (not from the clock) so output reproduces.
const YEARS = { from: 2020, to: 2045 };

// Zones where date-holidays names a link or a neighbour's zone instead of the state's own
// canonical IANA zone (Croatia and Slovenia share Belgrade's rules; Kiev was renamed Kyiv).
const STATE_ZONE = {
  HR: 'Europe/Zagreb',
  SI: 'Europe/Ljubljana',
  UA: 'Europe/Kyiv',
};
const REGION_ZONE = {
  'FR-YT': 'Indian/Mayotte',
  'GB-NIR': 'Europe/London',
  'FR-976': 'Indian/Mayotte',
};
// Regions with their own zone that date-holidays does not list as regions (no regional
// public holidays in it): Portugal's autonomous regions, the Azores and Madeira.
const EXTRA_REGIONS = {
  PT: [
    { code: 'PT-20', timeZone: 'Atlantic/Azores' },
    { code: 'PT-30', timeZone: 'Atlantic/Madeira' },
  ],
};
// ISO 3166-2 numeric codes of the French overseas departments, kept as aliases of
// date-holidays' codes (earlier calendars and requests use them).
const REGION_ALIASES = {
  FR: { '971': 'GP', '972': 'MQ', '973': 'GF', '974': 'RE', '976': 'YT' },
};

// States named by the routing registry: every one gets a calendar.
function registryStates() {
  const registry = JSON.parse(fs.readFileSync(REGISTRY, 'utf8'));
  const states = new Set();
  for (const d of registry.declarations) states.add(d.state);
  return [...states].sort();
}

// Easter Sunday as [year, month, day], the same algorithms as services/deadlines/calendar.cc.
function easter(year, orthodox) {
  if (orthodox) {
    const a = year % 4, b = year % 7, c = year % 19;
    const d = (19 * c + 15) % 30;
    const e = (2 * a + 4 * b - d + 34) % 7;
    const month = Math.floor((d + e + 114) / 31);
    const day = ((d + e + 114) % 31) + 1;
    const offset = Math.floor(year / 100) - Math.floor(year / 400) - 2;
    return dayNumber(year, month, day) + offset;
  }
  const a = year % 19, b = Math.floor(year / 100), c = year % 100;
  const d = Math.floor(b / 4), e = b % 4, f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4), k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return dayNumber(year, month, day);
}

function dayNumber(y, m, d) {
  return Math.round(Date.UTC(y, m - 1, d) / 86400000);
}

// Public whole-day holidays of one scope: Map key -> {name, dates: Map year -> [[m, d]]}.
function publicHolidays(hd) {
  const byKey = new Map();
  for (let year = YEARS.from; year <= YEARS.to; ++year) {
    for (const h of hd.getHolidays(year, 'en')) {
      if (h.type !== 'public') continue;
      const [datePart, timePart] = h.date.split(' ');
      if (timePart !== '00:00:00') continue;  // a part-day holiday
      const [y, m, d] = datePart.split('-').map(Number);
      const key = `${h.rule}|${h.substitute ? 'S' : ''}|${h.name}`;
      if (!byKey.has(key)) byKey.set(key, { name: h.name, dates: new Map() });
      const dates = byKey.get(key).dates;
      if (!dates.has(y)) dates.set(y, []);
      dates.get(y).push([m, d]);
    }
  }
  return byKey;
}

// Classifies one holiday's dates into Holiday messages (without regions).
function classify({ name, dates }, orthodoxState) {
  const years = [...dates.keys()].sort((a, b) => a - b);
  const contiguous = years.every((y, i) => i === 0 || y === years[i - 1] + 1);
  const once = years.every((y) => dates.get(y).length === 1);
  const bounds = {};
  if (years[0] !== YEARS.from) bounds.firstYear = years[0];
  if (years[years.length - 1] !== YEARS.to) bounds.lastYear = years[years.length - 1];
  if (contiguous && once) {
    const [m0, d0] = dates.get(years[0])[0];
    if (years.every((y) => dates.get(y)[0][0] === m0 && dates.get(y)[0][1] === d0)) {
      return [{ name, month: m0, day: d0, ...bounds }];
    }
    for (const orthodox of [orthodoxState, !orthodoxState]) {
      const off = (y) => dayNumber(y, ...dates.get(y)[0]) - easter(y, orthodox);
      const o0 = off(years[0]);
      if (years.every((y) => off(y) === o0)) {
        const h = { name, easterRelative: true, easterOffset: o0, ...bounds };
        if (orthodox !== orthodoxState) {
          h.easter = orthodox ? 'EASTER_COMPUTUS_ORTHODOX' : 'EASTER_COMPUTUS_WESTERN';
        }
        return [h];
      }
    }
  }
  const out = [];
  for (const y of years) {
    for (const [m, d] of dates.get(y)) out.push({ name, month: m, day: d, firstYear: y, lastYear: y });
  }
  return out;
}

// Identity of a holiday across a state and its regions: its dates, not its name (a canton
// may name the same day in French where the state's name is German).
function holidayKey(h) {
  return JSON.stringify([h.month ?? 0, h.day ?? 0, h.easterRelative ?? false,
    h.easterOffset ?? 0, h.easter ?? '', h.firstYear ?? 0, h.lastYear ?? 0]);
}

function sortHolidays(list) {
  // Fixed and Easter-relative rules first (by date / offset), then dated entries by date.
  const rank = (h) => (h.easterRelative ? 1 : h.firstYear && h.firstYear === h.lastYear ? 2 : 0);
  const num = (h) => (h.easterRelative ? h.easterOffset
    : (h.firstYear && h.firstYear === h.lastYear ? h.firstYear * 10000 : 0) + h.month * 100 + h.day);
  return list.sort((a, b) => rank(a) - rank(b) || num(a) - num(b) || holidayKey(a).localeCompare(holidayKey(b)));
}

function stateCalendar(state) {
  const hd = new Holidays(state);
  const zones = hd.getTimezones();
  if (!zones || zones.length === 0) throw new Error(`date-holidays has no zone for ${state}`);
  const timeZone = STATE_ZONE[state] ?? zones[0];
  const national = publicHolidays(hd);
  if (national.size === 0) throw new Error(`date-holidays has no public holiday for ${state}`);
  // The state's Easter: the one most of its Easter-relative public holidays follow.
  let west = 0, orth = 0;
  for (const [key] of national) {
    if (/(^|\s)orthodox(\s|$|\|)/.test(key.split('|')[0])) ++orth;
    else if (/(^|\s)easter(\s|$)/.test(key.split('|')[0])) ++west;
  }
  const orthodox = orth > west;

  const holidays = new Map();  // key -> Holiday with regions
  for (const entry of national.values()) {
    for (const h of classify(entry, orthodox)) {
      const key = holidayKey(h);
      if (!holidays.has(key)) holidays.set(key, { ...h, regions: [], exceptRegions: [] });
    }
  }
  const nationalKeys = new Set(holidays.keys());
  const regions = [];
  const regionCodes = Object.keys(hd.getStates(state) ?? {}).sort();
  const aliases = REGION_ALIASES[state] ?? {};
  const scopes = regionCodes.map((r) => [`${state}-${r}`, r]);
  for (const [alias, r] of Object.entries(aliases)) scopes.push([`${state}-${alias}`, r]);
  scopes.sort((a, b) => a[0].localeCompare(b[0]));
  for (const [code, r] of scopes) {
    const rd = new Holidays(state, r);
    // A region has its own zone only where date-holidays gives it one apart from the state's.
    const rzone = REGION_ZONE[code] ?? (rd.getTimezones() ?? [])[0];
    if (rzone && rzone !== zones[0] && rzone !== timeZone) regions.push({ code, timeZone: rzone });
    const seen = new Set();
    for (const entry of publicHolidays(rd).values()) {
      for (const h of classify(entry, orthodox)) {
        const key = holidayKey(h);
        seen.add(key);
        if (nationalKeys.has(key)) continue;
        if (!holidays.has(key)) holidays.set(key, { ...h, regions: [], exceptRegions: [] });
        holidays.get(key).regions.push(code);
      }
    }
    // A national holiday that a region does not keep (Good Friday in Ticino).
    for (const key of nationalKeys) if (!seen.has(key)) holidays.get(key).exceptRegions.push(code);
  }
  for (const extra of EXTRA_REGIONS[state] ?? []) regions.push(extra);
  regions.sort((a, b) => a.code.localeCompare(b.code));

  const cal = { state, timeZone };
  if (orthodox) cal.easter = 'EASTER_COMPUTUS_ORTHODOX';
  cal.holidays = sortHolidays([...holidays.values()]).map((h) => {
    const out = { ...h };
    if (out.regions.length === 0) delete out.regions;
    else out.regions.sort();
    if (out.exceptRegions.length === 0) delete out.exceptRegions;
    else out.exceptRegions.sort();
    return out;
  });
  if (regions.length) cal.regions = regions;
  cal.source = `date-holidays ${PKG_VERSION} (npm): public whole-day holidays of ${state}` +
      (regionCodes.length ? ' and its regions' : '') +
      `, ${YEARS.from}-${YEARS.to}; zone: ` +
      (STATE_ZONE[state] ? `IANA zone of the capital (date-holidays names ${zones[0]})`
        : 'date-holidays') +
      (EXTRA_REGIONS[state] ? '; regional zones of ' +
        EXTRA_REGIONS[state].map((r) => r.code).join(', ') + ': IANA' : '');
  cal.coveredFromYear = YEARS.from;
  cal.coveredToYear = YEARS.to;
  return cal;
}

// One holiday per line: readable diffs, a file of reasonable length.
function render(file) {
  const lines = ['{', ` "version": ${JSON.stringify(file.version)},`, ' "states": ['];
  file.states.forEach((s, i) => {
    lines.push('  {');
    const { holidays, ...rest } = s;
    for (const [k, v] of Object.entries(rest)) lines.push(`   ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
    lines.push('   "holidays": [');
    holidays.forEach((h, j) => lines.push(`    ${JSON.stringify(h)}${j + 1 < holidays.length ? ',' : ''}`));
    lines.push('   ]');
    lines.push(`  }${i + 1 < file.states.length ? ',' : ''}`);
  });
  lines.push(' ]', '}', '');
  return lines.join('\n');
}

const file = {
  version: `date-holidays-${PKG_VERSION}.${YEARS.from}-${YEARS.to}`,
  states: registryStates().map(stateCalendar),
};
const text = render(file);
if (process.argv.includes('--check')) {
  const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
  if (current !== text) {
    console.error(`${OUT} is not what generate.mjs writes: run it and commit the result`);
    process.exit(1);
  }
  console.log(`${OUT} is up to date (${file.states.length} states)`);
} else {
  fs.writeFileSync(OUT, text);
  console.log(`wrote ${OUT}: ${file.states.length} states, ` +
      `${file.states.reduce((n, s) => n + s.holidays.length, 0)} holidays`);
}
