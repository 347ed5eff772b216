/* mcpprof flame graph: stateless number formatting, hashing and colour helpers, inlined before
 * flamegraph.js (which reads them from the one global they define). Written for mcpprof (MIT). */
var mcpprofFlameUtil = mcpprofFlameUtil || (function () {
  'use strict';
  function group(s) { return s.replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
  function num(x, dec) { var p = x.toFixed(dec).split('.'); p[0] = group(p[0]); return p.join('.'); }
  function ms(x) { return num(x, Math.abs(x) < 10 ? 2 : Math.abs(x) < 1000 ? 1 : 0) + ' ms'; }
  function bytes(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], k = 0;
    while (Math.abs(b) >= 1024 && k < u.length - 1) { b /= 1024; k++; }
    return (k ? num(b, Math.abs(b) < 10 ? 2 : 1) : num(b, 0)) + ' ' + u[k];
  }
  function pct(part, whole) {
    if (!whole) return '0%';
    var f = 100 * part / whole;
    return (f !== 0 && f < 0.1 ? f.toFixed(3) : f.toFixed(f < 10 ? 2 : 1)) + '%';
  }
  function hash(s) {   // FNV-1a: a stable colour per function name
    var h = 2166136261;
    for (var k = 0; k < s.length; k++) { h ^= s.charCodeAt(k); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }
  function rgb(r, g, b) { return 'rgb(' + Math.round(r) + ',' + Math.round(g) + ',' + Math.round(b) + ')'; }
  function reverse(arr, from) {
    for (var lo = from, hi = arr.length - 1; lo < hi; lo++, hi--) { var tmp = arr[lo]; arr[lo] = arr[hi]; arr[hi] = tmp; }
  }
  var shared = {};
  function island(root) {   // a flame graph's data; names shared by the page's views joined in
    var data = JSON.parse(root.querySelector('script.fg-data').textContent), ref = data.names_ref;
    if (ref) {
      if (!shared[ref]) shared[ref] = JSON.parse(document.getElementById(ref).textContent);
      data.names = shared[ref].names; data.kinds = shared[ref].kinds;
    }
    return data;
  }
  return {group: group, num: num, ms: ms, bytes: bytes, pct: pct, hash: hash, rgb: rgb, reverse: reverse,
    island: island};
})();
