// Report map: wheel to zoom around the pointer, drag to pan, double-click to reset. The map is
// an inline SVG drawn by the server; this only changes its viewBox (no network, no library).
(function () {
  "use strict";
  document.querySelectorAll("svg.map").forEach(function (svg) {
    var start = svg.getAttribute("viewBox").split(" ").map(Number);
    var box = start.slice();
    function apply() { svg.setAttribute("viewBox", box.map(function (v) { return v.toFixed(2); }).join(" ")); }
    function toSvg(evt) {
      var r = svg.getBoundingClientRect();
      return [box[0] + (evt.clientX - r.left) / r.width * box[2], box[1] + (evt.clientY - r.top) / r.height * box[3]];
    }
    svg.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      var p = toSvg(evt), f = evt.deltaY < 0 ? 0.8 : 1.25;
      var w = Math.min(Math.max(box[2] * f, start[2] / 50), start[2]);
      var h = w * start[3] / start[2];
      box = [p[0] - (p[0] - box[0]) * w / box[2], p[1] - (p[1] - box[1]) * h / box[3], w, h];
      apply();
    }, { passive: false });
    var drag = null;
    svg.addEventListener("pointerdown", function (evt) {
      if (evt.target.closest("a")) return; // let clicks on bears follow their link
      drag = { x: evt.clientX, y: evt.clientY, box: box.slice() };
      svg.classList.add("dragging");
      svg.setPointerCapture(evt.pointerId);
    });
    svg.addEventListener("pointermove", function (evt) {
      if (!drag) return;
      var r = svg.getBoundingClientRect();
      box[0] = drag.box[0] - (evt.clientX - drag.x) / r.width * box[2];
      box[1] = drag.box[1] - (evt.clientY - drag.y) / r.height * box[3];
      apply();
    });
    function end() { drag = null; svg.classList.remove("dragging"); }
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("dblclick", function () { box = start.slice(); apply(); });
  });
})();
