// The text coloured by a hidden cell (src/inspect/assets/textview.js): what
// the pages of `unroll cells` share, written after common.js and before the
// page's own script. TextView builds one span per character once; colourBy
// recolours them from a series' values; hovering shows the value, the loss
// and the model's best guesses there, and a click pins a character.
// ---- numbers
function arr(x) { return Array.isArray(x) ? x : []; }
function f3(v) { return num(v) ? minus(v.toFixed(3)) : '\u2014'; }
function signed2(v) {
  return num(v) ? (v < 0 ? '\u2212' : '+') + Math.abs(v).toFixed(2) : '\u2014';
}
function pct(v) { return num(v) ? (100 * v).toFixed(1) + '%' : '\u2014'; }
function short(v) { return num(v) ? minus(String(Math.round(v * 1000) / 1000)) : '\u2014'; }


// The range a series is drawn over: its own, else symmetric around 0 over
// `values` (default: the series' values).
function rangeOf(s, values) {
  var r = s.range, v = arr(values || s.values);
  if (Array.isArray(r) && num(r[0]) && num(r[1]) && r[1] > r[0]) return r;
  var m = 0;
  for (var i = 0; i < v.length; i++)
    if (num(v[i])) m = Math.max(m, Math.abs(v[i]));
  return m > 0 ? [-m, m] : [-1, 1];
}
// ---- colours: white at 0, red towards -1, blue towards +1
var RED = [226, 84, 72], BLUE = [62, 124, 222], PAL = [];
for (var k = 0; k <= 200; k++) {
  var x = k / 100 - 1, t = Math.abs(x), c = x < 0 ? RED : BLUE;
  PAL.push(
      'rgb(' + Math.round(255 + (c[0] - 255) * t) + ',' + Math.round(255 + (c[1] - 255) * t) + ',' +
      Math.round(255 + (c[2] - 255) * t) + ')');
}
function colour(x) {
  if (!num(x)) return '';
  if (x < -1)
    x = -1;
  else if (x > 1)
    x = 1;
  return PAL[Math.round((x + 1) * 100)];
}
function seriesColour(s, v) { return num(v) ? colour((2 * v - s.lo - s.hi) / (s.hi - s.lo)) : ''; }

// ---- characters as drawn in the text, and as named in the info strip
function code(ch) { return ch.length ? ch.codePointAt(0) : -1; }
function special(ch) {
  var c = code(ch);
  return c <= 32 || c === 127 || (c >= 0x80 && c <= 0xA0) || c === 0xAD ||
      (c >= 0x2000 && c <= 0x200F) || c === 0x2028 || c === 0x2029 || c === 0x202F ||
      c === 0x205F || c === 0x3000 || c === 0xFEFF;
}
function shown(ch) {  // in the text: spaces and tabs stay (coloured boxes), controls become symbols
  if (ch === '\n') return '\u21B5';
  if (ch === ' ' || ch === '\t') return ch;
  var c = code(ch);
  if (c >= 0 && c < 32) return String.fromCharCode(0x2400 + c);
  if (c === 127) return '\u2421';
  if (c < 0) return '\u2205';
  return special(ch) ? '\u00B7' : ch;
}
function readable(ch) {  // a character on its own, where blanks would vanish
  if (ch === ' ') return '\u2423';
  if (ch === '\n') return '\u21B5';
  if (ch === '\t') return '\u21E5';
  return shown(ch);
}
function uplus(ch) {
  var c = code(ch);
  if (c < 0) return '';
  var h = c.toString(16).toUpperCase();
  while (h.length < 4) h = '0' + h;
  return 'U+' + h;
}


// ---- the page's data: the JSON in #unroll-data, or null after saying in `box` why not
function pageData(box) {
  var fail = function(msg) {
    if (box) box.textContent = 'This page could not be drawn: ' + msg;
    return null;
  };
  var D;
  try {
    D = JSON.parse(document.getElementById('unroll-data').textContent);
  } catch (err) {
    return fail('its data did not parse (' + err.message + ')');
  }
  return D && typeof D === 'object' ? D : fail('its data is empty');
}

// ---- the viewer
function TextView(box, info, legend, chars) {
  var N = chars.length, spans = new Array(N), lineOf = new Int32Array(N), colOf = new Int32Array(N);
  var frag = document.createDocumentFragment(), line = 0, col = 0;
  for (var i = 0; i < N; i++) {
    var ch = chars[i], s = document.createElement('span');
    s.ui = i;
    lineOf[i] = line;
    colOf[i] = col++;
    if (ch === '\n') {
      s.className = 'nl';
      s.textContent = '\u21B5';
      frag.appendChild(s);
      frag.appendChild(document.createTextNode('\n'));
      line++;
      col = 0;
    } else {
      var d = shown(ch);
      if (d !== ch) s.className = 'ctl';
      s.textContent = d;
      frag.appendChild(s);
    }
    spans[i] = s;
  }
  box.textContent = '';
  if (N === 0) box.appendChild(el('span', 'hint', '(the text is empty)'));
  box.appendChild(frag);

  var cur = null, values = [], loss = [], tops = [], pinned = -1, lastShown = -1;
  this.spans = spans;

  function showInfo(i) {
    info.textContent = '';
    lastShown = (num(i) && i >= 0 && i < N) ? i : -1;
    if (lastShown < 0) {
      info.appendChild(el(
          'div', 'hint',
          'Hover over a character (or tap it) to see the value of the cell, ' +
              'the loss there and the model\u2019s best guesses for the next character. A click pins it.'));
      return;
    }
    var ch = chars[i];
    var a = el('div', 'i-char');
    a.appendChild(el('div', 'glyph' + (special(ch) ? ' ws' : ''), readable(ch)));
    a.appendChild(el('div', 'cp', special(ch) || code(ch) > 126 ? uplus(ch) : '\u00A0'));
    info.appendChild(a);

    var b = el('div', 'i-meta');
    function row(k, v, sw) {
      var r = el('div');
      r.appendChild(el('span', 'k', k));
      if (sw != null) {
        var q = el('span', 'swatch');
        q.style.backgroundColor = sw;
        r.appendChild(q);
      }
      r.appendChild(el('span', null, v));
      b.appendChild(r);
    }
    row('position',
        i + ' of ' + N + '  \u00B7  line ' + (lineOf[i] + 1) + ', column ' + (colOf[i] + 1));
    if (cur) {
      var v = values[i];
      row('value', f3(v) + '  \u00B7  ' + cur.id, seriesColour(cur, v) || '#fff');
    }
    var l = loss[i];
    row('loss',
        num(l) ? l.toFixed(3) + ' nats  \u00B7  p(this character) = ' + Math.exp(-l).toFixed(3) :
                 '\u2014 (nothing read before it)');
    info.appendChild(b);

    var c = el('div', 'i-top');
    var next = i + 1 < N ? chars[i + 1] : null;
    c.appendChild(
        el('div', 'h',
           'after it, the model expects' +
               (next != null ? '  (next is ' + readable(next) + ')' : '')));
    arr(tops[i]).slice(0, 5).forEach(function(g) {
      if (!Array.isArray(g)) return;
      var gc = typeof g[0] === 'string' ? g[0] : String(g[0]), p = num(g[1]) ? g[1] : 0;
      var r = el('div', 'guess');
      r.appendChild(el('span', 'g' + (gc === next ? ' hit' : ''), readable(gc)));
      var bar = el('span', 'gbar');
      bar.style.width = Math.max(1, Math.round(200 * Math.min(1, p))) + 'px';
      r.appendChild(bar);
      r.appendChild(el('span', 'gp', p.toFixed(3)));
      c.appendChild(r);
    });
    info.appendChild(c);
  }
  function refresh() { showInfo(lastShown >= 0 ? lastShown : pinned); }
  this.showInfo = showInfo;

  // Colours the text by series s (its id, lo and hi) with these values (one per character).
  this.colourBy = function(s, vals) {
    cur = s;
    values = arr(vals);
    for (var i = 0; i < N; i++) spans[i].style.backgroundColor = seriesColour(s, values[i]);
    legend.textContent = '';
    legend.appendChild(el('span', null, short(s.lo)));
    var bar = el('span', 'bar');
    bar.style.background =
        'linear-gradient(to right, ' + PAL[0] + ', ' + PAL[100] + ', ' + PAL[200] + ')';
    legend.appendChild(bar);
    legend.appendChild(el('span', null, short(s.hi)));
    legend.appendChild(el('span', null, '  (white at ' + short((s.lo + s.hi) / 2) + ')'));
    refresh();
  };
  // The model's loss [N] and best guesses [N][k][char, p] shown under the pointer.
  this.setModel = function(l, t) {
    loss = arr(l);
    tops = arr(t);
    refresh();
  };

  box.addEventListener('mouseover', function(e) {
    if (typeof e.target.ui === 'number') showInfo(e.target.ui);
  });
  box.addEventListener('mouseleave', function() { showInfo(pinned); });
  box.addEventListener('click', function(e) {
    var i = e.target.ui;
    if (typeof i !== 'number') return;
    if (pinned >= 0) spans[pinned].classList.remove('pin');
    pinned = pinned === i ? -1 : i;
    if (pinned >= 0) spans[pinned].classList.add('pin');
    showInfo(i);
  });
}
