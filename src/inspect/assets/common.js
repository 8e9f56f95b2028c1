// What the pages' scripts share (src/inspect/assets/common.js): written
// before each page's own script, in the same script element.
function num(x) { return typeof x === 'number' && isFinite(x); }
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}
function minus(s) { return s.charAt(0) === '-' ? '\u2212' + s.slice(1) : s; }
