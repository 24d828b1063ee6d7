/* Small SVG line charts, no library: axes with round ticks, one polyline per series, optional
   point markers and a legend. BearCharts.lineChart(svg, series, options). */
(function (global) {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function ticks(min, max, count) {
    if (!(max > min)) { max = min + 1; }
    var raw = (max - min) / Math.max(1, count), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * mag; }).find(function (s) { return s >= raw; }) || raw;
    var out = [], v = Math.ceil(min / step - 1e-9) * step;
    for (; v <= max + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  function fmt(v) {
    if (Math.abs(v) >= 1000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k";
    return String(+v.toPrecision(3));
  }

  /* series: [{name, color, points: [[x, y], ...], dash}], options: {xLabel, yLabel, xMin, xMax,
     yMin, yMax, markers: [{x, y, color, label}], empty: "text when there is nothing"} */
  function lineChart(svg, series, options) {
    var o = options || {};
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var box = svg.viewBox.baseVal, W = box.width || 480, H = box.height || 260;
    var m = { l: 52, r: 14, t: 14, b: 42 };
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] != null && isFinite(p[1])) all.push(p); }); });
    if (!all.length) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "class": "chart-empty" }, svg, o.empty || "No data yet");
      return;
    }
    var xs = all.map(function (p) { return p[0]; }), ys = all.map(function (p) { return p[1]; });
    var x0 = o.xMin != null ? o.xMin : Math.min.apply(null, xs), x1 = o.xMax != null ? o.xMax : Math.max.apply(null, xs);
    var y0 = o.yMin != null ? o.yMin : Math.min(0, Math.min.apply(null, ys)), y1 = o.yMax != null ? o.yMax : Math.max.apply(null, ys);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    var sx = function (v) { return m.l + (v - x0) / (x1 - x0) * (W - m.l - m.r); };
    var sy = function (v) { return H - m.b - (v - y0) / (y1 - y0) * (H - m.t - m.b); };
    var axes = el("g", { "class": "axes" }, svg);
    ticks(y0, y1, 5).forEach(function (t) {
      el("line", { x1: m.l, x2: W - m.r, y1: sy(t), y2: sy(t), "class": "grid" }, axes);
      el("text", { x: m.l - 6, y: sy(t) + 4, "text-anchor": "end" }, axes, fmt(t));
    });
    ticks(x0, x1, 6).forEach(function (t) {
      el("line", { x1: sx(t), x2: sx(t), y1: H - m.b, y2: H - m.b + 4, "class": "tick" }, axes);
      el("text", { x: sx(t), y: H - m.b + 16, "text-anchor": "middle" }, axes, fmt(t));
    });
    el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, "class": "axis" }, axes);
    el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, "class": "axis" }, axes);
    if (o.xLabel) el("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle", "class": "label" }, axes, o.xLabel);
    if (o.yLabel) el("text", { x: 12, y: (m.t + H - m.b) / 2, "text-anchor": "middle", "class": "label", transform: "rotate(-90 12 " + (m.t + H - m.b) / 2 + ")" }, axes, o.yLabel);
    series.forEach(function (s) {
      var pts = s.points.filter(function (p) { return p[1] != null && isFinite(p[1]); });
      if (!pts.length) return;
      var d = pts.map(function (p) { return sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1); }).join(" ");
      var line = el("polyline", { points: d, fill: "none", stroke: s.color, "stroke-width": 2, "class": "series" }, svg);
      line.setAttribute("data-series", s.name);
      if (s.dash) line.setAttribute("stroke-dasharray", s.dash);
      if (pts.length === 1) el("circle", { cx: sx(pts[0][0]), cy: sy(pts[0][1]), r: 3, fill: s.color }, svg);
    });
    (o.markers || []).forEach(function (k) {
      if (k.x == null || k.y == null) return;
      el("circle", { cx: sx(k.x), cy: sy(k.y), r: 5, fill: "#fff", stroke: k.color, "stroke-width": 2.5, "class": "marker" }, svg);
    });
    var legend = el("g", { "class": "legend" }, svg), lx = m.l + 8, ly = m.t + 12;
    var widest = Math.max.apply(null, series.map(function (s) { return s.name.length; }));
    el("rect", { x: lx - 4, y: ly - 12, width: 30 + widest * 6.2, height: series.length * 16 + 4, rx: 3, "class": "legend-bg" }, legend);
    series.forEach(function (s, i) {
      el("line", { x1: lx, x2: lx + 18, y1: ly + i * 16 - 4, y2: ly + i * 16 - 4, stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || "" }, legend);
      el("text", { x: lx + 24, y: ly + i * 16 }, legend, s.name);
    });
  }

  global.BearCharts = { lineChart: lineChart, ticks: ticks };
})(window);
