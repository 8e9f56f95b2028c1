
(function() {
'use strict';
var SUP = {
  '-': '\u207B',
  '0': '\u2070',
  '1': '\u00B9',
  '2': '\u00B2',
  '3': '\u00B3',
  '4': '\u2074',
  '5': '\u2075',
  '6': '\u2076',
  '7': '\u2077',
  '8': '\u2078',
  '9': '\u2079'
};
function fmt(v) {
  if (!num(v)) return '\u2014';
  if (v === 0) return '0';
  var e = Math.floor(Math.log10(Math.abs(v)));
  if (e >= -3 && e <= 3) return minus(String(+v.toPrecision(3)));
  var m = +(v / Math.pow(10, e)).toPrecision(3);
  if (Math.abs(m) >= 10) {
    m /= 10;
    e += 1;
  }
  return minus(String(m)) + ' \u00D7 10' +
      String(e).split('').map(function(c) { return SUP[c]; }).join('');
}

Array.prototype.forEach.call(document.querySelectorAll('figure.chart'), function(fig) {
  var D;
  try {
    D = JSON.parse(fig.querySelector('script.chart-data').textContent);
  } catch (err) {
    return;
  }
  var svg = fig.querySelector('svg.plot'), tip = fig.querySelector('.tip');
  if (!svg || !tip || !D || !Array.isArray(D.s)) return;
  var guide = svg.querySelector('.guide'), dot = svg.querySelector('.dot');
  var lines = Array.prototype.slice.call(svg.querySelectorAll('polyline.s'));
  function ok(v) { return num(v) && v >= 1e-30; }
  function X(k) { return D.x0 + (D.x1 - D.x0) * k / D.K; }
  function Y(v) {
    var t = ok(v) ? (Math.log10(v) - D.lo) / (D.hi - D.lo) : 0;
    return D.y1 - (D.y1 - D.y0) * Math.max(0, Math.min(1, t));
  }
  function focus(id) {
    svg.classList.toggle('dim', id != null);
    lines.forEach(function(
        l) { l.classList.toggle('hot', l.getAttribute('data-s') === String(id)); });
  }
  function hide() {
    guide.setAttribute('visibility', 'hidden');
    dot.setAttribute('visibility', 'hidden');
    tip.hidden = true;
    focus(null);
  }
  svg.addEventListener('mousemove', function(e) {
    var r = svg.getBoundingClientRect(), sx = D.W / r.width, sy = D.H / r.height;
    var px = (e.clientX - r.left) * sx, py = (e.clientY - r.top) * sy;
    if (px < D.x0 - 8 || px > D.x1 + 8 || py < D.y0 - 8 || py > D.y1 + 8) {
      hide();
      return;
    }
    var k = Math.max(0, Math.min(D.K, Math.round((px - D.x0) / (D.x1 - D.x0) * D.K)));
    var best = null, bestD = 1e9, bestY = 0;
    D.s.forEach(function(s) {
      if (!Array.isArray(s.v) || k >= s.v.length) return;
      var y = Y(s.v[k]), d = Math.abs(y - py);
      if (d < bestD) {
        bestD = d;
        best = s;
        bestY = y;
      }
    });
    if (!best) {
      hide();
      return;
    }
    var x = X(k), v = best.v[k];
    guide.setAttribute('x1', x);
    guide.setAttribute('x2', x);
    guide.setAttribute('visibility', 'visible');
    dot.setAttribute('cx', x);
    dot.setAttribute('cy', bestY);
    dot.setAttribute('fill', best.c);
    dot.setAttribute('visibility', 'visible');
    tip.textContent = '';
    tip.appendChild(el('div', null, best.name + '  \u00B7  layer ' + best.layer));
    tip.appendChild(
        el('div', 'v',
           'k = ' + k + ':  ' + fmt(v) + (ok(v) ? '' : '  (drawn at the bottom of the axis)')));
    tip.hidden = false;
    var left = x / sx + 14;
    if (left + tip.offsetWidth > r.width) left = x / sx - 14 - tip.offsetWidth;
    tip.style.left = Math.max(0, left) + 'px';
    tip.style.top = Math.max(0, bestY / sy - tip.offsetHeight - 8) + 'px';
    focus(best.i);
  });
  svg.addEventListener('mouseleave', hide);
  Array.prototype.forEach.call(fig.querySelectorAll('ul.legend li[data-s]'), function(li) {
    li.addEventListener('mouseenter', function() { focus(li.getAttribute('data-s')); });
    li.addEventListener('mouseleave', function() { focus(null); });
  });
});
})();
