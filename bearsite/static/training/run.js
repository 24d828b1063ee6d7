/* The training run page: polls the run's JSON once a second until it ends, and draws the loss,
   the per-epoch validation figures, the PR curves of the new and the active model, the
   confusion at the threshold and the decision. */
(function () {
  "use strict";
  var box = document.getElementById("run");
  var bar = document.getElementById("run-progress");
  var progress = JSON.parse(document.getElementById("run-progress-data").textContent);
  var metrics = JSON.parse(document.getElementById("run-metrics-data").textContent);
  var NEW = "#1565c0", ACTIVE = "#ef6c00", GREEN = "#2e7d32";

  function fmtEta(s) {
    if (s == null) return "–";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function num(v, digits) { return v == null ? "–" : (+v).toFixed(digits); }
  function esc(s) { var d = document.createElement("div"); d.textContent = s == null ? "" : s; return d.innerHTML; }

  function showProgress(p) {
    bar.value = p.percent;
    document.querySelectorAll("[data-field]").forEach(function (node) {
      var k = node.dataset.field, v = p[k];
      if (k === "eta") v = p.finished ? "–" : fmtEta(p.eta_s);
      else if (k === "loss") v = num(v, 4);
      else if (k === "images_per_s") v = num(v, 1);
      else if (k === "phase" && !v) v = "waiting for the GPU worker";
      node.textContent = v == null ? "–" : v;
    });
    var note = document.getElementById("run-note");
    if (p.note) { note.hidden = false; note.innerHTML = esc(p.note).replace(/\n/g, "<br>"); }
    var err = document.getElementById("run-error");
    if (p.error) { err.hidden = false; err.textContent = p.error; }
    document.getElementById("run-log").innerHTML = (p.log || []).map(function (e) {
      return "<li>" + esc(e.at) + ": " + esc(e.message) + "</li>";
    }).join("");
    if (p.finished) {
      var form = document.getElementById("cancel-form");
      if (form) form.hidden = true;
    }
    BearCharts.lineChart(document.getElementById("loss-chart"),
      [{ name: "loss", color: NEW, points: p.loss_curve || [] }],
      { xLabel: "step", yLabel: "cross-entropy", yMin: 0, empty: "Loss appears with the first step" });
    var h = p.history || [];
    var pick = function (k) { return h.map(function (e) { return [e.epoch, e[k] == null ? null : e[k]]; }); };
    BearCharts.lineChart(document.getElementById("val-chart"), [
      { name: "average precision", color: NEW, points: pick("ap") },
      { name: "recall", color: GREEN, points: pick("recall") },
      { name: "precision", color: ACTIVE, points: pick("precision") },
    ], { xLabel: "epoch", yMin: 0, yMax: 1, empty: "Validation figures appear after each evaluated epoch" });
    document.getElementById("epochs-table").innerHTML = h.length ? "<tr><th>epoch</th><th>mean loss</th><th>AP</th><th>recall</th><th>precision</th><th>FP / frame</th><th>threshold</th><th>images/s</th></tr>" +
      h.map(function (e) {
        return "<tr><td>" + e.epoch + "</td><td>" + num(e.loss, 4) + "</td><td>" + num(e.ap, 3) + "</td><td>" + num(e.recall, 3) + "</td><td>" + num(e.precision, 3) + "</td><td>" + num(e.fp_per_frame, 2) + "</td><td>" + num(e.threshold, 4) + "</td><td>" + num(e.images_per_s, 1) + "</td></tr>";
      }).join("") : "";
  }

  function showSnapshot(s) {
    if (!s || !s.kind) return;
    var counts = Object.keys(s.tiles || {}).map(function (split) {
      var c = s.tiles[split];
      return split + ": " + Object.keys(c).map(function (k) { return k + " " + c[k]; }).join(", ");
    }).join("; ");
    document.getElementById("snapshot-summary").innerHTML = esc(s.kind) + ": " + s.train_tiles + " training tiles (" + s.train_positives + " bears), " +
      s.val_tiles + " validation tiles (" + s.val_positives + " bears) from " + (s.frames ? s.frames.val : "?") + " held-out frames (" + s.val_percent + " % of frames, by frame) · " +
      '<a href="' + esc(box.dataset.snapshotUrl) + '">snapshot (every tile, label and split)</a><br><span class="muted">' + esc(counts) + "</span>" +
      (s.notes || []).map(function (n) { return '<br><span class="muted">' + esc(n) + "</span>"; }).join("");
  }

  function showMetrics(m) {
    if (!m) return;
    var curve = function (x) { return (x && x.pr_curve || []).map(function (q) { return [q[2], q[1]]; }).sort(function (a, b) { return a[0] - b[0]; }); };
    var series = [{ name: "new model", color: NEW, points: curve(m.new) }];
    var markers = [];
    if (m.new && m.new.recall != null) markers.push({ x: m.new.recall, y: m.new.precision, color: NEW });
    if (m.active && m.active.pr_curve) {
      series.push({ name: "active model" + (m.active_version ? " (" + m.active_version.name + ")" : ""), color: ACTIVE, points: curve(m.active), dash: "6 3" });
      markers.push({ x: m.active.recall, y: m.active.precision, color: ACTIVE });
    }
    BearCharts.lineChart(document.getElementById("pr-chart"), series,
      { xLabel: "recall", yLabel: "precision", xMin: 0, xMax: 1, yMin: 0, yMax: 1, markers: markers, empty: "PR curves appear after evaluation" });

    var rows = [["new model", m.new, m.confusion && m.confusion["new"]], ["active model", m.active, m.confusion && m.confusion.active]]
      .filter(function (r) { return r[2]; });
    if (rows.length) {
      document.getElementById("confusion").innerHTML = '<table class="figures" id="confusion-table"><tr><th></th><th>threshold</th><th>bears found (TP)</th><th>missed (FN)</th><th>false alarms (FP)</th><th>correct empty (TN)</th><th>recall</th><th>precision</th><th>FP / frame</th></tr>' +
        rows.map(function (r) {
          var x = r[1], c = r[2];
          return "<tr><th>" + r[0] + "</th><td>" + num(x.threshold, 4) + "</td><td>" + c.tp + "</td><td>" + c.fn + "</td><td>" + c.fp + "</td><td>" + c.tn + "</td><td>" + num(x.recall, 3) + "</td><td>" + num(x.precision, 3) + "</td><td>" + num(x.fp_per_frame, 2) + "</td></tr>";
        }).join("") + "</table>";
    }
    if (m.decision) {
      var sec = document.getElementById("decision");
      sec.hidden = false;
      var word = document.getElementById("decision-word");
      word.textContent = m.decision;
      word.className = "decision-" + m.decision;
      document.getElementById("decision-reason").textContent = m.decision_reason;
      var f = m.decision_figures || {};
      document.getElementById("decision-figures").innerHTML = Object.keys(f).map(function (k) {
        var v = f[k];
        return "<tr><th>" + esc(k.replace(/_/g, " ")) + "</th><td>" + esc(typeof v === "number" ? +v.toFixed(4) : v) + "</td></tr>";
      }).join("");
    }
  }

  function tick() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        showProgress(p);
        if (p.finished) {
          showMetrics(p.metrics);
          if (p.metrics) showSnapshot(p.metrics.snapshot);
          var pv = p.produced_version, line = document.getElementById("decision-version");
          if (pv) line.innerHTML = 'Model <a href="' + esc(pv.url) + '">' + esc(pv.name) + "</a> is " + esc(pv.status) + ".";
        } else {
          setTimeout(tick, 1000);
        }
      })
      .catch(function () { setTimeout(tick, 3000); });
  }

  showProgress(progress);
  showMetrics(metrics);
  if (!progress.finished) setTimeout(tick, 1000);
})();
