// The page of `unroll cells` over many checkpoints (src/inspect/assets/timeline.js):
// the text coloured by one cell, with a slider over the checkpoints. Written
// after common.js and textview.js. The page opens at the last checkpoint, or at
// the one its address names: #checkpoint=K (1 = the first, as the page counts)
// or #step=S; moving the slider writes the address, so a view can be linked.
(function() {
'use strict';

var textBox = document.getElementById('text');
var D = pageData(textBox);
if (!D) return;

var chars = arr(D.chars).map(function(c) { return typeof c === 'string' ? c : String(c); });
var cks = arr(D.checkpoints).filter(function(c) { return c && typeof c === 'object'; });
var C = cks.length;
var series = arr(D.series).filter(function(
    s) { return s && typeof s.id === 'string' && Array.isArray(s.values); });
var byId = new Map();
series.forEach(function(s) {
  var r = rangeOf(s, s.values[s.values.length - 1]);  // else the last checkpoint's
  s.lo = r[0];
  s.hi = r[1];
  if (!byId.has(s.id)) byId.set(s.id, s);
});

var sel = document.getElementById('series'), slider = document.getElementById('slider');
var at = document.getElementById('at'), play = document.getElementById('play');
var view = new TextView(
    textBox, document.getElementById('info'), document.getElementById('legend'), chars);
series.forEach(function(s) {
  var o = el('option', null, s.label ? s.id + '  \u00B7  ' + s.label : s.id);
  o.value = s.id;
  sel.appendChild(o);
});
if (!series.length) {
  sel.appendChild(el('option', null, '(no cells)'));
  sel.disabled = true;
}
slider.max = String(Math.max(0, C - 1));
if (C < 2) slider.disabled = play.disabled = true;

// 25360000 → "25.4M", 485000 → "485k", as the page's tables write them.
function compact(n) {
  var a = Math.abs(n);
  if (a >= 1e6) return String(Number((n / 1e6).toPrecision(3))) + 'M';
  if (a >= 1e4) return String(Number((n / 1e3).toPrecision(3))) + 'k';
  return String(n);
}

var index = C - 1;
function show() {
  if (!C) {
    at.textContent = 'no checkpoints';
    return;
  }
  var c = cks[index], s = byId.get(sel.value);
  slider.value = String(index);
  slider.setAttribute('data-index', String(index));
  view.setModel(c.loss, c.top);
  if (s) view.colourBy(s, arr(s.values[index]));
  var parts = ['step ' + (num(c.step) ? c.step : '?')];
  if (num(c.tokens)) parts.push(compact(c.tokens) + ' tokens');
  parts.push('checkpoint ' + (index + 1) + ' of ' + C);
  if (num(c.mean_loss)) parts.push('loss on the text ' + c.mean_loss.toFixed(3));
  at.textContent = parts.join('  \u00B7  ');
  at.title = typeof c.name === 'string' ? c.name : '';
}
function go(i) {
  index = Math.max(0, Math.min(C - 1, i));
  show();
  try {
    history.replaceState(null, '', '#checkpoint=' + (index + 1));
  } catch (e) {
    // some browsers refuse it for files; the page works without
  }
}

sel.addEventListener('change', show);
slider.addEventListener('input', function() { go(Number(slider.value)); });
document.addEventListener('keydown', function(e) {
  var t = e.target;
  if (t === slider || (t instanceof Element && t.closest('input, select, textarea'))) return;
  if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
    go(index + (e.key === 'ArrowLeft' ? -1 : 1));
    e.preventDefault();
  }
});
var timer = null;
function stop() {
  if (timer) clearInterval(timer);
  timer = null;
  play.textContent = 'play';
}
play.addEventListener('click', function() {
  if (timer) return stop();
  if (index >= C - 1) go(0);
  play.textContent = 'pause';
  timer = setInterval(function() {
    if (index >= C - 1) return stop();
    go(index + 1);
  }, 700);
});

// The address may name a checkpoint: #checkpoint=K (from 1), or #step=S (the first at or after S).
var m = /checkpoint=(\d+)/.exec(location.hash), st = /step=(\d+)/.exec(location.hash);
if (m)
  index = Math.max(0, Math.min(C - 1, Number(m[1]) - 1));
else if (st) {
  index = C - 1;
  for (var i = 0; i < C; i++)
    if (num(cks[i].step) && cks[i].step >= Number(st[1])) {
      index = i;
      break;
    }
}
if (typeof D.default_series === 'string' && byId.has(D.default_series))
  sel.value = D.default_series;
show();
})();
