
(function() {
'use strict';

var textBox = document.getElementById('text');
var D = pageData(textBox);
if (!D) return;

var chars = arr(D.chars).map(function(c) { return typeof c === 'string' ? c : String(c); });
var N = chars.length;
var loss = arr(D.loss), tops = arr(D.top);

var series = arr(D.series).filter(function(
    s) { return s && typeof s.id === 'string' && Array.isArray(s.values); });
var byId = new Map();
series.forEach(function(s) {
  var r = rangeOf(s);
  s.lo = r[0];
  s.hi = r[1];
  if (!byId.has(s.id)) byId.set(s.id, s);
});

// ---- the viewer (textview.js): one span per character, coloured by the chosen series
var sel = document.getElementById('series');
var view = new TextView(
    textBox, document.getElementById('info'), document.getElementById('legend'), chars);
view.setModel(loss, tops);
var spans = view.spans;

var groups = new Map();
series.forEach(function(s) {
  var key = num(s.layer) ? 'layer ' + s.layer : 'other';
  if (!groups.has(key)) {
    var g = el('optgroup');
    g.label = key;
    groups.set(key, g);
  }
  var o = el('option', null, (s.label ? s.label + '  \u00B7  ' : '') + s.id);
  o.value = s.id;
  groups.get(key).appendChild(o);
});
groups.forEach(function(g) { sel.appendChild(g); });
if (series.length === 0) {
  sel.appendChild(el('option', null, '(no series)'));
  sel.disabled = true;
}

function showSeries(id) {
  var s = byId.get(id);
  if (!s) return false;
  if (sel.value !== s.id) sel.value = s.id;
  view.colourBy(s, s.values);
  return true;
}
sel.addEventListener('change', function() { showSeries(sel.value); });

// Any cell id on the page selects that series in the viewer and scrolls to it.
function pick(id, at) {
  if (!showSeries(id)) return;
  document.getElementById('viewer').scrollIntoView({behavior: 'smooth', block: 'start'});
  if (num(at) && at >= 0 && at < N) textBox.scrollTop = Math.max(0, spans[at].offsetTop - 24);
}
document.addEventListener('click', function(e) {
  var t = e.target;
  if (!(t instanceof Element)) return;
  var b = t.closest('button.cid');
  if (b && b.dataset.id) {
    pick(b.dataset.id, b.dataset.at ? Number(b.dataset.at) : NaN);
    return;
  }
  var p = t.closest('button.plink');
  if (p) {
    var sec = document.getElementById('probe-' + p.dataset.probe);
    if (sec) sec.scrollIntoView({behavior: 'smooth', block: 'start'});
  }
});

function cidButton(id, at) {
  var b = el('button', 'cid', id);
  b.type = 'button';
  b.dataset.id = id;
  if (num(at)) b.dataset.at = String(at);
  if (!byId.has(id)) {
    b.disabled = true;
    b.title = 'not among the recorded series';
  } else
    b.title = 'show ' + (byId.get(id).label || id) + ' in the text above';
  return b;
}

// ---- one section per probe
var threshold = D.summary && num(D.summary.threshold) ? D.summary.threshold : 0.6;
var WINDOW = 600, SEG = 100;

// The ~600 characters where the probe changes most often (else the start),
// widened to whole lines.
function excerpt(vals) {
  if (N <= WINDOW) return [0, N];
  var P = new Int32Array(N + 1);
  for (var t = 0; t < N; t++) P[t + 1] = P[t] + (t > 0 && vals[t] !== vals[t - 1] ? 1 : 0);
  var best = 0, bestScore = -1;
  for (var s = 0; s + WINDOW <= N; s++) {
    var score = P[s + WINDOW] - P[s + 1];
    if (score > bestScore) {
      bestScore = score;
      best = s;
    }
  }
  var a = best, b = best + WINDOW;
  for (var j = a; j > 0 && a - j < 160; j--)
    if (chars[j - 1] === '\n') {
      a = j;
      break;
    }
  for (var m = b - 1; m < N && m - b < 160; m++)
    if (chars[m] === '\n') {
      b = m + 1;
      break;
    }
  return [a, Math.min(b, N)];
}

function probeSection(p, pi) {
  var sec = el('section', 'probe');
  sec.id = 'probe-' + pi;
  var vals = p.values, maxAbs = 0;
  for (var i = 0; i < vals.length; i++)
    if (num(vals[i])) maxAbs = Math.max(maxAbs, Math.abs(vals[i]));
  var ranks = arr(p.top).filter(function(t) { return t && typeof t.id === 'string'; });
  var bestCorr = ranks.length && num(ranks[0].corr) ? ranks[0].corr : NaN;
  var found = num(bestCorr) && Math.abs(bestCorr) >= threshold;

  var h = el('h3');
  h.appendChild(el('span', null, String(p.name)));
  h.appendChild(el('span', 'badge', p.binary ? 'binary' : 'numeric, up to ' + short(maxAbs)));
  if (found) h.appendChild(el('span', 'badge ok', 'a cell tracks it'));
  sec.appendChild(h);
  if (p.description) sec.appendChild(el('p', 'note', String(p.description)));

  var w = excerpt(vals);
  var cols = el('div', 'cols');
  var tbl = el('table', 'tbl'), thead = el('thead'), hr = el('tr');
  [['#', 'num'], ['cell', ''], ['what', ''], ['corr', 'num'], ['', ''], ['accuracy', 'num']]
      .forEach(function(c) { hr.appendChild(el('th', c[1], c[0])); });
  thead.appendChild(hr);
  tbl.appendChild(thead);
  var tb = el('tbody');
  ranks.forEach(function(r, ri) {
    var tr = el('tr', num(r.corr) && Math.abs(r.corr) >= threshold ? 'found' : null);
    tr.appendChild(el('td', 'num', String(ri + 1)));
    var td = el('td');
    td.appendChild(cidButton(r.id, w[0]));
    tr.appendChild(td);
    var s = byId.get(r.id);
    tr.appendChild(el('td', 'what', s && s.label ? s.label : ''));
    tr.appendChild(el('td', 'num', signed2(r.corr)));
    var tdb = el('td'), cb = el('span', 'cbar');
    if (num(r.corr)) {
      cb.style.width = Math.round(70 * Math.min(1, Math.abs(r.corr))) + 'px';
      cb.style.backgroundColor = r.corr < 0 ? PAL[25] : PAL[175];
    }
    tdb.appendChild(cb);
    tr.appendChild(tdb);
    tr.appendChild(el('td', 'num', pct(r.accuracy)));
    tb.appendChild(tr);
  });
  if (!ranks.length) {
    var tr0 = el('tr'), td0 = el('td', 'note', 'no cell was ranked for this probe');
    td0.colSpan = 6;
    tr0.appendChild(td0);
    tb.appendChild(tr0);
  }
  tbl.appendChild(tb);
  cols.appendChild(tbl);
  sec.appendChild(cols);

  // Side by side: each line of the excerpt drawn as a group of rows, the probe
  // on top and its best cells below, so the columns line up character for character.
  var rows = [{
    tag: 'P',
    colour: function(i) { return maxAbs > 0 && num(vals[i]) ? colour(vals[i] / maxAbs) : ''; }
  }];
  var cells = ranks.filter(function(r) { return byId.has(r.id); }).slice(0, 2);
  cells.forEach(function(r, ci) {
    var s = byId.get(r.id);
    rows.push({
      tag: '#' + (ranks.indexOf(r) + 1),
      extra: ci === 1,
      s: s,
      r: r,
      colour: function(i) { return seriesColour(s, s.values[i]); }
    });
  });

  var key = el('div', 'key');
  var k0 = el('div');
  k0.appendChild(el('span', 'gut', 'P'));
  k0.appendChild(
      el('span', null,
         'the probe: ' +
             (p.binary ? 'blue where it is on' :
                         'its value scaled by its largest, ' + short(maxAbs))));
  key.appendChild(k0);
  rows.slice(1).forEach(function(row) {
    var d = el('div');
    d.appendChild(el('span', 'gut', row.tag));
    d.appendChild(cidButton(row.s.id, w[0]));
    d.appendChild(
        el('span', null,
           '  ' + (row.s.label || '') + '  \u00B7  corr ' + signed2(row.r.corr) +
               (num(row.r.corr) && row.r.corr < 0 ? '  (red where the probe is on)' : '')));
    if (row.extra) {
      var lab = el('label'), cbx = el('input');
      cbx.type = 'checkbox';
      cbx.addEventListener('change', function() { sec.classList.toggle('show2', cbx.checked); });
      lab.appendChild(cbx);
      lab.appendChild(document.createTextNode(' show it'));
      d.appendChild(lab);
    }
    key.appendChild(d);
  });
  key.appendChild(
      el('div', 'note',
         'characters ' + w[0] + '\u2013' + w[1] + ' of ' + N +
             (w[0] > 0 || w[1] < N ? ' (where the probe changes most)' : '')));
  sec.appendChild(key);

  var readout = el('div', 'readout', '\u00A0');
  sec.appendChild(readout);
  var box = el('div', 'strips'), frag = document.createDocumentFragment();
  function group(x, y) {
    var g = el('div', 'grp');
    rows.forEach(function(row) {
      var r = el('div', row.extra ? 'srow extra' : 'srow');
      r.appendChild(el('span', 'gut', row.tag));
      for (var i = x; i < y; i++) {
        var sp = el('span', chars[i] === '\n' ? 'nl' : null, shown(chars[i]));
        sp.ui = i;
        var bg = row.colour(i);
        if (bg) sp.style.backgroundColor = bg;
        r.appendChild(sp);
      }
      g.appendChild(r);
    });
    frag.appendChild(g);
  }
  // Lines longer than SEG characters are cut, after a space when there is one near the end.
  var start = w[0];
  for (var q = w[0]; q < w[1]; q++) {
    if (chars[q] === '\n' || q === w[1] - 1) {
      group(start, q + 1);
      start = q + 1;
      continue;
    }
    if (q + 1 - start >= SEG) {
      var cut = q;
      for (var z = q; z > q - 24; z--)
        if (chars[z] === ' ') {
          cut = z;
          break;
        }
      group(start, cut + 1);
      start = cut + 1;
    }
  }
  box.appendChild(frag);
  box.addEventListener('mouseover', function(e) {
    var i = e.target.ui;
    if (typeof i !== 'number') return;
    var parts = ['position ' + i, readable(chars[i]), 'probe ' + short(vals[i])];
    rows.slice(1).forEach(function(row) { parts.push(row.s.id + ' ' + f3(row.s.values[i])); });
    readout.textContent = parts.join('   \u00B7   ');
  });
  sec.appendChild(box);
  return sec;
}

var list = document.getElementById('probe-list');
var nProbes = 0;
arr(D.probes).forEach(function(p, pi) {
  if (!p || !Array.isArray(p.values)) return;
  list.appendChild(probeSection(p, pi));
  nProbes++;
});
if (!nProbes) list.appendChild(el('p', 'note', 'No probes in this page.'));

// ---- start
var first = typeof D.default_series === 'string' && byId.has(D.default_series) ?
    D.default_series :
    (series.length ? series[0].id : null);
if (first)
  showSeries(first);
else
  view.showInfo(-1);
})();
