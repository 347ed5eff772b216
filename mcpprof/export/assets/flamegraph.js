/* mcpprof flame graph: draws the call tree embedded in the page's JSON island.
 * Written for mcpprof (MIT); no third-party code, no network. Every string from the profile is
 * set with textContent or as an attribute value, never parsed as markup. */
(function (root) {
  'use strict';
  if (!root) return;
  var data = JSON.parse(root.querySelector('script.fg-data').textContent);
  var ROW = 18;            // px per stack level
  var MIN_PX = 0.3;        // boxes narrower than this are not drawn
  var TEXT_PX = 22;        // boxes narrower than this get no label

  var names = data.names, kinds = data.kinds, nameOf = data.name, parent = data.parent;
  var values = data.values, types = data.types, N = nameOf.length;
  var kids = new Array(N), depth = new Int32Array(N);
  var i;
  for (i = 0; i < N; i++) kids[i] = [];
  for (i = 1; i < N; i++) { kids[parent[i]].push(i); depth[i] = depth[parent[i]] + 1; }

  function q(sel) { return root.querySelector(sel); }
  var ui = {
    chart: q('.fg-chart'), typeLabel: q('.fg-type-label'), type: q('.fg-type'), reset: q('.fg-reset'),
    search: q('.fg-search'), icase: q('.fg-icase'), matched: q('.fg-matched'), flip: q('.fg-flip'),
    details: q('.fg-details'), legend: q('.fg-legend'), note: q('.fg-note')
  };
  var state = {t: data['default'] || 0, zoom: 0, re: null, icicle: false};
  var hit = new Uint8Array(names.length);   // search hits per name
  var maxDepthCache = {};
  var colourCache = {};

  // ---- formatting -------------------------------------------------------------------------
  function group(s) { return s.replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
  function num(x, dec) { var p = x.toFixed(dec).split('.'); p[0] = group(p[0]); return p.join('.'); }
  function ms(x) { return num(x, Math.abs(x) < 10 ? 2 : Math.abs(x) < 1000 ? 1 : 0) + ' ms'; }
  function bytes(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], k = 0;
    while (Math.abs(b) >= 1024 && k < u.length - 1) { b /= 1024; k++; }
    return (k ? num(b, Math.abs(b) < 10 ? 2 : 1) : num(b, 0)) + ' ' + u[k];
  }
  function fmt(x) {
    var ty = types[state.t];
    switch (ty.unit) {
      case 'nanoseconds': return ms(x / 1e6);
      case 'microseconds': return ms(x / 1e3);
      case 'milliseconds': return ms(x);
      case 'seconds': return ms(x * 1e3);
      case 'bytes': return bytes(x);
      default: return num(x, 0) + (ty.noun ? ' ' + ty.noun : '');
    }
  }
  function pct(part, whole) {
    if (!whole) return '0%';
    var f = 100 * part / whole;
    return (f !== 0 && f < 0.1 ? f.toFixed(3) : f.toFixed(f < 10 ? 2 : 1)) + '%';
  }

  // ---- colours (flamegraph.pl-like "hot" palette, hashed by function name) ---------------------
  function hash(s) {
    var h = 2166136261;
    for (var k = 0; k < s.length; k++) { h ^= s.charCodeAt(k); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }
  function colour(ni) {
    var c = colourCache[ni];
    if (c) return c;
    var kind = kinds[ni], fn = names[ni].replace(/ \([^()]*\)$/, ''), h = hash(fn);
    var a = (h & 255) / 255, b = ((h >>> 8) & 255) / 255, d = ((h >>> 16) & 255) / 255;
    if (kind === 0) c = 'rgb(214,206,196)';
    else if (kind === 1) c = rgb(95 + 60 * a, 175 + 45 * b, 215 + 35 * d);        // request: blue
    else if (kind === 3) c = rgb(215 + 40 * d, 55 + 65 * a, 35 + 35 * b);           // your code: red
    else if (kind === 4) c = 'rgb(224,224,224)';                                    // pruned: grey
    else c = rgb(225 + 30 * d, 160 + 65 * a, 40 + 50 * b);                          // libraries: orange/yellow
    colourCache[ni] = c;
    return c;
  }
  function rgb(r, g, b) { return 'rgb(' + Math.round(r) + ',' + Math.round(g) + ',' + Math.round(b) + ')'; }

  // ---- layout -------------------------------------------------------------------------------
  function reverse(arr, from) {
    for (var lo = from, hi = arr.length - 1; lo < hi; lo++, hi--) { var tmp = arr[lo]; arr[lo] = arr[hi]; arr[hi] = tmp; }
  }
  function maxDepth(t) {
    if (maxDepthCache[t] === undefined) {
      var v = values[t], m = 0;
      for (var k = 0; k < N; k++) if (v[k] > 0 && depth[k] > m) m = depth[k];
      maxDepthCache[t] = m;
    }
    return maxDepthCache[t];
  }

  function draw() {
    var t = state.t, v = values[t], total = v[0], chart = ui.chart;
    var frag = document.createDocumentFragment();
    chart.textContent = '';
    if (!(total > 0)) {
      chart.style.height = 'auto';
      var empty = document.createElement('p');
      empty.className = 'fg-empty';
      empty.textContent = 'No ' + types[t].label + ' samples in this profile.';
      chart.appendChild(empty);
      ui.reset.disabled = true;
      updateMatched();
      fit();
      return;
    }
    if (!(v[state.zoom] > 0)) state.zoom = 0;
    var z = state.zoom, D = maxDepth(t), W = chart.clientWidth || 1000;
    lastWidth = chart.clientWidth;
    chart.style.height = ((D + 1) * ROW) + 'px';
    function box(n, x, w, cls) {
      var div = document.createElement('div'), ni = nameOf[n];
      var y = state.icicle ? depth[n] * ROW : (D - depth[n]) * ROW;
      div.className = 'fg-box' + cls + (hit[ni] ? ' fg-match' : '');
      div.style.cssText = 'left:' + x.toFixed(2) + 'px;top:' + y + 'px;width:' +
        (w >= 2 ? w - 1 : w).toFixed(2) + 'px;background:' + colour(ni);
      div.setAttribute('data-n', n);
      if (w >= TEXT_PX) div.textContent = names[ni];
      frag.appendChild(div);
    }
    for (var a = parent[z]; a >= 0; a = parent[a]) box(a, 0, W, ' fg-anc');
    var scale = W / v[z], todo = [z], xs = [0];
    while (todo.length) {
      var n = todo.pop(), x = xs.pop(), c = kids[n];
      box(n, x, v[n] * scale, '');
      var start = todo.length;
      for (var j = 0, cx = x; j < c.length; j++) {   // children from the left, self time on the right
        var cw = v[c[j]] * scale;
        if (cw >= MIN_PX) { todo.push(c[j]); xs.push(cx); }
        cx += cw;
      }
      reverse(todo, start); reverse(xs, start);       // pop the leftmost first (DOM in reading order)
    }
    chart.appendChild(frag);
    ui.reset.disabled = z === 0;
    updateMatched();
    fit();
  }

  // ---- search ---------------------------------------------------------------------------------
  function setSearch() {
    var text = ui.search.value;
    state.re = null;
    ui.search.classList.remove('fg-bad');
    if (text) {
      try { state.re = new RegExp(text, ui.icase.checked ? 'i' : ''); }
      catch (e) { ui.search.classList.add('fg-bad'); }
    }
    for (var k = 0; k < names.length; k++) hit[k] = state.re && state.re.test(names[k]) ? 1 : 0;
    draw();
  }
  function updateMatched() {
    if (!state.re) { ui.matched.textContent = ui.search.value ? 'invalid regular expression' : ''; return; }
    var v = values[state.t], inHit = new Uint8Array(N), sum = 0;
    for (var k = 0; k < N; k++) {           // parent[k] < k: a parent is seen before its children
      var above = k > 0 && inHit[parent[k]], h = hit[nameOf[k]];
      if (h && !above) sum += v[k];         // nested matches are counted once
      inHit[k] = above || h ? 1 : 0;
    }
    ui.matched.textContent = 'Matched: ' + pct(sum, v[0]);
  }

  // ---- details and tooltips -------------------------------------------------------------------
  function describe(n) {
    var v = values[state.t], self = v[n], c = kids[n];
    for (var k = 0; k < c.length; k++) self -= v[c[k]];
    var s = names[nameOf[n]] + '\n' + fmt(v[n]) + ' (' + pct(v[n], v[0]) + ' of total';
    if (state.zoom) s += ', ' + pct(v[n], v[state.zoom]) + ' of zoomed';
    s += ')';
    if (c.length) s += ', self ' + fmt(self);
    return s;
  }
  function boxOf(ev) {
    var el = ev.target;
    while (el && el !== ui.chart) {
      if (el.classList && el.classList.contains('fg-box')) return el;
      el = el.parentNode;
    }
    return null;
  }

  // ---- fitting into an iframe (e.g. a notebook's srcdoc frame) -------------------------------
  function fit() {
    try {
      var fe = window.frameElement;
      if (fe && fe.tagName === 'IFRAME') {
        // the content's own height (the document's scrollHeight never drops below the frame's)
        var h = Math.ceil(root.getBoundingClientRect().bottom + window.pageYOffset) + 2;
        if (Math.abs(fe.getBoundingClientRect().height - h) > 1) fe.style.height = h + 'px';
      }
    } catch (e) { /* a cross-origin parent: it sizes the frame itself */ }
  }

  // ---- wiring ---------------------------------------------------------------------------------
  if (types.length > 1) {
    for (var k = 0; k < types.length; k++) {
      var opt = document.createElement('option');
      opt.value = String(k);
      opt.textContent = types[k].label;
      ui.type.appendChild(opt);
    }
    ui.type.value = String(state.t);
    ui.typeLabel.hidden = false;
    ui.type.addEventListener('change', function () {
      state.t = +ui.type.value;
      note();
      draw();
    });
  }
  ui.chart.addEventListener('click', function (ev) {
    var b = boxOf(ev);
    if (!b) return;
    state.zoom = +b.getAttribute('data-n');
    draw();
  });
  ui.chart.addEventListener('mouseover', function (ev) {
    var b = boxOf(ev);
    if (!b) return;
    var text = describe(+b.getAttribute('data-n'));
    b.title = text;
    ui.details.textContent = text.replace('\n', ' \u2014 ');
  });
  ui.chart.addEventListener('mouseleave', function () { ui.details.textContent = '\u00a0'; });
  ui.reset.addEventListener('click', function () { state.zoom = 0; draw(); });
  ui.search.addEventListener('input', setSearch);
  ui.icase.addEventListener('change', setSearch);
  ui.flip.addEventListener('click', function () {
    state.icicle = !state.icicle;
    ui.flip.textContent = state.icicle ? 'Flame' : 'Icicle';
    draw();
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape' && state.zoom) { state.zoom = 0; draw(); }
  });
  var pending = false, lastWidth = -1;
  window.addEventListener('resize', function () {   // redraw on width changes only (fit() changes height)
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      if (ui.chart.clientWidth !== lastWidth) draw();
    });
  });

  function note() {
    var ty = types[state.t], parts = [];
    if (data.pruned_subtrees > 0 && ty.pruned > 0) {
      parts.push(group(String(data.pruned_subtrees)) + (data.pruned_subtrees === 1 ? ' subtree' : ' subtrees') +
        ' under ' + (+(100 * data.min_fraction).toPrecision(3)) + '% of the total merged into [pruned] boxes, ' +
        'which hold ' + pct(ty.pruned, ty.total) + ' of ' + ty.label + '.');
    }
    parts.push('Total ' + ty.label + ': ' + fmt(ty.total) + '. Click a box to zoom, Esc to reset.');
    parts.push('Generated by ' + data.generator + '.');
    ui.note.textContent = parts.join(' ');
  }
  function legend() {
    var items = [[1, 'request'], [3, 'your code'], [2, 'libraries']];
    for (var k = 0; k < items.length; k++) {
      var sw = document.createElement('span');
      sw.className = 'fg-swatch fg-k' + items[k][0];
      ui.legend.appendChild(sw);
      ui.legend.appendChild(document.createTextNode(items[k][1] + ' '));
    }
  }
  legend();
  note();
  draw();
  window.mcpprofFlameGraph = window.mcpprofFlameGraph || [];
  window.mcpprofFlameGraph.push({
    state: state,
    search: function (text) { ui.search.value = text; setSearch(); return ui.matched.textContent; },
    zoom: function (n) { state.zoom = n; draw(); },
    redraw: draw
  });
})(document.currentScript && document.currentScript.parentNode);
