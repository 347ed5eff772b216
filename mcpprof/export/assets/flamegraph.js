/* mcpprof flame graph: draws the call trees embedded in the page's JSON islands.
 * Written for mcpprof (MIT); no third-party code, no network. Every string from the profile is
 * set with textContent or as an attribute value, never parsed as markup.
 * Inlined once per page: it draws every .mcpprof-flamegraph of the page not drawn yet. An island
 * with a "base" array (a diff profile) is drawn as a differential flame graph: widths from one
 * side, red where a frame's total (inclusive) share -- or value -- grew from base to new, blue
 * where it shrank, deeper for larger changes. */
(function () {
  'use strict';
  var ROW = 18;            // px per stack level
  var MIN_PX = 0.3;        // boxes narrower than this are not drawn
  var TEXT_PX = 22;        // boxes narrower than this get no label
  var MAX_GONE = 12;       // frames listed as "only in base"

  function init(root) {
    var data = mcpprofFlameUtil.island(root);
    var names = data.names, kinds = data.kinds, nameOf = data.name, parent = data.parent;
    var values = data.values, types = data.types, N = nameOf.length;
    var base = data.base || null, diffOpts = data.diff || {};
    var kids = new Array(N), depth = new Int32Array(N);
    var i;
    for (i = 0; i < N; i++) kids[i] = [];
    for (i = 1; i < N; i++) { kids[parent[i]].push(i); depth[i] = depth[parent[i]] + 1; }

    function q(sel) { return root.querySelector(sel); }
    var ui = {
      chart: q('.fg-chart'), typeLabel: q('.fg-type-label'), type: q('.fg-type'), reset: q('.fg-reset'),
      search: q('.fg-search'), icase: q('.fg-icase'), matched: q('.fg-matched'), flip: q('.fg-flip'),
      details: q('.fg-details'), legend: q('.fg-legend'), note: q('.fg-note'),
      req: q('.fg-req'), reqLabel: q('.fg-req-label'), side: q('.fg-side'), norm: q('.fg-norm'), gone: q('.fg-gone')
    };
    var state = {t: data['default'] || 0, zoom: 0, re: null, icicle: false, side: 'new',
      norm: diffOpts.normalize !== false};
    var hit = new Uint8Array(names.length);   // search hits per name
    var maxDepthCache = {};
    var colourCache = {};
    var pending = false, lastWidth = -1;

    // the widths drawn: the profile's values, or a diff's new or base side
    function cur() { return base && state.side === 'base' ? base[state.t] : values[state.t]; }

    // ---- formatting (the stateless helpers are in flamegraph_util.js) ------------------------
    var U = mcpprofFlameUtil, group = U.group, num = U.num, ms = U.ms, bytes = U.bytes, pct = U.pct;
    var hash = U.hash, rgb = U.rgb, reverse = U.reverse;
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

    // ---- colours (flamegraph.pl-like "hot" palette, hashed by function name) ---------------------
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

    // ---- differential: base -> new ----------------------------------------------------------------
    // A frame's change is that of its total (inclusive) value; with state.norm, of its share of the
    // view (the zoomed frame, each side divided by its own value there), so runs of different length
    // compare by share. Colour depth is the change relative to the largest change drawn.
    function change(n) {
      var t = state.t, z = state.zoom, b = base[t][n], v = values[t][n], bs = b, ns = v;
      if (state.norm) { bs = base[t][z] ? b / base[t][z] : 0; ns = values[t][z] ? v / values[t][z] : 0; }
      return {b: b, v: v, bs: bs, ns: ns, d: ns - bs};
    }
    function delta(c) {
      if (!c.b) return c.v ? 'only in new' : 'in neither';
      if (!c.v) return 'only in base';
      var f = 100 * (c.ns - c.bs) / c.bs;
      return (state.norm ? 'share ' : 'value ') + (f >= 0 ? '+' : '') + f.toFixed(1) + '%';
    }
    function diffColour(n, maxD) {   // [background, dark?]
      var d = change(n).d;
      if (!maxD || !d) return ['rgb(236,236,236)', false];
      var k = Math.min(1, Math.abs(d) / maxD), lo = 236 - 186 * k;
      return [d > 0 ? rgb(255, lo, lo) : rgb(lo, lo, 255), k > 0.6];
    }

    // ---- layout -------------------------------------------------------------------------------
    function maxDepth() {
      var key = state.t + ':' + state.side;
      if (maxDepthCache[key] === undefined) {
        var v = cur(), m = 0;
        for (var k = 0; k < N; k++) if (v[k] > 0 && depth[k] > m) m = depth[k];
        maxDepthCache[key] = m;
      }
      return maxDepthCache[key];
    }

    function draw() {
      var t = state.t, v = cur(), total = v[0], chart = ui.chart;
      var frag = document.createDocumentFragment();
      chart.textContent = '';
      if (!(total > 0)) {
        chart.style.height = 'auto';
        var empty = document.createElement('p');
        empty.className = 'fg-empty';
        empty.textContent = 'No ' + types[t].label + ' samples ' + (base ? 'on the ' + state.side + ' side.' : 'in this profile.');
        chart.appendChild(empty);
        ui.reset.disabled = true;
        after();
        return;
      }
      if (!(v[state.zoom] > 0)) state.zoom = 0;
      var z = state.zoom, D = maxDepth(), W = chart.clientWidth || 1000;
      lastWidth = chart.clientWidth;
      chart.style.height = ((D + 1) * ROW) + 'px';
      var shown = [], xs0 = [], ws = [], maxD = 0;
      function box(n, x, w, cls, bg) {
        var div = document.createElement('div'), ni = nameOf[n];
        var y = state.icicle ? depth[n] * ROW : (D - depth[n]) * ROW;
        div.className = 'fg-box' + cls + (hit[ni] ? ' fg-match' : '');
        div.style.cssText = 'left:' + x.toFixed(2) + 'px;top:' + y + 'px;width:' +
          (w >= 2 ? w - 1 : w).toFixed(2) + 'px;background:' + bg;
        div.setAttribute('data-n', n);
        if (w >= TEXT_PX) div.textContent = names[ni];
        frag.appendChild(div);
      }
      for (var a = parent[z]; a >= 0; a = parent[a]) box(a, 0, W, ' fg-anc', base ? 'rgb(236,236,236)' : colour(nameOf[a]));
      var scale = W / v[z], todo = [z], xs = [0];
      while (todo.length) {
        var n = todo.pop(), x = xs.pop(), c = kids[n];
        shown.push(n); xs0.push(x); ws.push(v[n] * scale);
        if (base) maxD = Math.max(maxD, Math.abs(change(n).d));
        var start = todo.length;
        for (var j = 0, cx = x; j < c.length; j++) {   // children from the left, self time on the right
          var cw = v[c[j]] * scale;
          if (cw >= MIN_PX) { todo.push(c[j]); xs.push(cx); }
          cx += cw;
        }
        reverse(todo, start); reverse(xs, start);       // pop the leftmost first (DOM in reading order)
      }
      for (var k = 0; k < shown.length; k++) {
        if (!base) { box(shown[k], xs0[k], ws[k], '', colour(nameOf[shown[k]])); continue; }
        var dc = diffColour(shown[k], maxD);
        box(shown[k], xs0[k], ws[k], dc[1] ? ' fg-dark' : '', dc[0]);
      }
      chart.appendChild(frag);
      ui.reset.disabled = z === 0;
      after();
    }
    function after() {
      updateMatched();
      if (base) { gone(); syncRequest(); }
      fit();
    }

    // ---- differential extras: frames only in base, the request selector ---------------------------
    function gone() {
      var t = state.t, z = state.zoom, bt = base[t], vt = values[t], inView = new Uint8Array(N), list = [];
      inView[z] = 1;
      for (var k = z + 1; k < N; k++) {          // parent[k] < k: the view's nodes follow its root
        inView[k] = inView[parent[k]];
        if (inView[k] && bt[k] > 0 && !(vt[k] > 0) && vt[parent[k]] > 0) list.push(k);
      }
      ui.gone.textContent = '';
      ui.gone.hidden = !list.length || state.side === 'base';
      if (ui.gone.hidden) return;
      list.sort(function (x, y) { return bt[y] - bt[x] || x - y; });
      var head = document.createElement('span');
      head.textContent = 'Only in base (no width in new; click one to see it with widths from base): ';
      ui.gone.appendChild(head);
      for (var j = 0; j < Math.min(list.length, MAX_GONE); j++) {
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'fg-gone-item';
        b.setAttribute('data-n', list[j]);
        b.textContent = names[nameOf[list[j]]] + ' \u2014 ' + fmt(bt[list[j]]) + ' (' + pct(bt[list[j]], bt[z]) + ' of base)';
        ui.gone.appendChild(b);
      }
      if (list.length > MAX_GONE) ui.gone.appendChild(document.createTextNode(' and ' + (list.length - MAX_GONE) + ' more'));
    }
    function showBase(n) {
      state.side = 'base';
      ui.side.value = 'base';
      state.zoom = n;
      note();
      draw();
    }
    function requestNodes() {
      return kids[0].filter(function (n) { return kinds[nameOf[n]] === 1; });
    }
    function syncRequest() {
      var n = state.zoom;
      while (n > 0 && depth[n] > 1) n = parent[n];
      ui.req.value = String(n > 0 && kinds[nameOf[n]] === 1 ? n : 0);
    }
    function setupDiff() {
      var reqs = requestNodes(), t = state.t;
      var all = document.createElement('option');
      all.value = '0';
      all.textContent = 'All requests';
      ui.req.appendChild(all);
      reqs.sort(function (x, y) { return values[t][y] - values[t][x] || base[t][y] - base[t][x] || x - y; });
      for (var k = 0; k < reqs.length; k++) {
        var opt = document.createElement('option');
        opt.value = String(reqs[k]);
        opt.textContent = names[nameOf[reqs[k]]] + (values[t][reqs[k]] > 0 ? '' : ' (only in base)');
        ui.req.appendChild(opt);
      }
      ui.reqLabel.hidden = reqs.length < 2;
      ui.norm.checked = state.norm;
      ui.req.addEventListener('change', function () {
        var n = +ui.req.value;
        if (n && !(values[state.t][n] > 0)) { showBase(n); return; }
        state.zoom = n;
        draw();
      });
      ui.side.addEventListener('change', function () { state.side = ui.side.value; note(); draw(); });
      ui.norm.addEventListener('change', function () { state.norm = ui.norm.checked; note(); draw(); });
      ui.gone.addEventListener('click', function (ev) {
        var el = ev.target;
        // show it among its siblings: zoom to its parent, widths from the base
        if (el && el.classList && el.classList.contains('fg-gone-item')) showBase(parent[+el.getAttribute('data-n')]);
      });
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
      var v = cur(), inHit = new Uint8Array(N), sum = 0;
      for (var k = 0; k < N; k++) {           // parent[k] < k: a parent is seen before its children
        var above = k > 0 && inHit[parent[k]], h = hit[nameOf[k]];
        if (h && !above) sum += v[k];         // nested matches are counted once
        inHit[k] = above || h ? 1 : 0;
      }
      ui.matched.textContent = 'Matched: ' + pct(sum, v[0]);
    }

    // ---- details and tooltips -------------------------------------------------------------------
    function selfOf(v, n) {
      var self = v[n], c = kids[n];
      for (var k = 0; k < c.length; k++) self -= v[c[k]];
      return self;
    }
    function describe(n) {
      if (base) return describeDiff(n);
      var v = values[state.t];
      var s = names[nameOf[n]] + '\n' + fmt(v[n]) + ' (' + pct(v[n], v[0]) + ' of total';
      if (state.zoom) s += ', ' + pct(v[n], v[state.zoom]) + ' of zoomed';
      s += ')';
      if (kids[n].length) s += ', self ' + fmt(selfOf(v, n));
      return s;
    }
    function describeDiff(n) {
      var t = state.t, z = state.zoom, c = change(n), of = z ? ' of zoomed)' : ' of total)';
      var s = names[nameOf[n]] + '\nbase ' + fmt(c.b) + ' (' + pct(c.b, base[t][z]) + of +
        ' \u2192 new ' + fmt(c.v) + ' (' + pct(c.v, values[t][z]) + of + ', ' + delta(c);
      if (kids[n].length) s += '; self ' + fmt(selfOf(base[t], n)) + ' \u2192 ' + fmt(selfOf(values[t], n));
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
    if (base) setupDiff();
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
      if (data.pruned_subtrees > 0 && (ty.pruned > 0 || ty.base_pruned > 0)) {
        parts.push(group(String(data.pruned_subtrees)) + (data.pruned_subtrees === 1 ? ' subtree' : ' subtrees') +
          ' under ' + (+(100 * data.min_fraction).toPrecision(3)) + '% of the total merged into [pruned] boxes, ' +
          'which hold ' + pct(ty.pruned, ty.total) + ' of ' + ty.label + (base ? ' (new side).' : '.'));
      }
      if (base) {
        parts.push('Differential flame graph: widths from the ' + state.side + ' profile; colour is the change of ' +
          'each frame\u2019s total (inclusive) ' + (state.norm
            ? 'share of the view from base to new (each side divided by its own total, so runs of different ' +
              'length compare by share)'
            : 'value from base to new (absolute, not normalised)') +
          ': red grew, blue shrank, deeper for larger changes (relative to the largest in view).');
        parts.push('Total ' + ty.label + ': base ' + fmt(ty.base_total) + ', new ' + fmt(ty.total) +
          '. Click a box to zoom, Esc to reset.');
      } else {
        parts.push('Total ' + ty.label + ': ' + fmt(ty.total) + '. Click a box to zoom, Esc to reset.');
      }
      parts.push('Generated by ' + data.generator + '.');
      ui.note.textContent = parts.join(' ');
    }
    function legend() {
      var items = base ? [['fg-grew', 'grew'], ['fg-shrank', 'shrank'], ['fg-same', 'unchanged']]
        : [['fg-k1', 'request'], ['fg-k3', 'your code'], ['fg-k2', 'libraries']];
      for (var k = 0; k < items.length; k++) {
        var sw = document.createElement('span');
        sw.className = 'fg-swatch ' + items[k][0];
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
  }

  var roots = document.querySelectorAll('.mcpprof-flamegraph');
  for (var r = 0; r < roots.length; r++) {
    if (roots[r].hasAttribute('data-fg-drawn')) continue;
    roots[r].setAttribute('data-fg-drawn', '');
    init(roots[r]);
  }
})();
