// Upload boxes: drag and drop or multi-select, an XHR upload with a progress bar, then polling of
// the batch's ingest progress with each failed file and its reason. Without JavaScript the form
// still posts and the browser lands on the batch page.
(function () {
  "use strict";

  function escapeText(s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; }

  function pollBatch(statusUrl, bar, text, errors, done) {
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        bar.value = p.percent;
        text.textContent = p.done + " of " + p.total + " files done: " + p.ingested + " ingested, " +
          p.duplicates + " duplicates, " + p.failed + " failed";
        if (errors) {
          errors.innerHTML = p.errors.map(function (e) {
            return '<li class="status-' + e.status + '">' + escapeText(e.name) + ": " + escapeText(e.error) + "</li>";
          }).join("");
        }
        if (p.pending > 0 || p.status !== "done") {
          setTimeout(function () { pollBatch(statusUrl, bar, text, errors, done); }, 1000);
        } else if (done) { done(p); }
      })
      .catch(function () { setTimeout(function () { pollBatch(statusUrl, bar, text, errors, done); }, 3000); });
  }

  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    var input = form.querySelector('input[type="file"]');
    var zone = form.querySelector("[data-dropzone]");
    var progress = form.querySelector("[data-progress]");
    var upBar = form.querySelector("[data-upload-bar]");
    var inBar = form.querySelector("[data-ingest-bar]");
    var inText = form.querySelector("[data-ingest-text]");
    var errors = form.querySelector("[data-errors]");
    var dropped = null;

    ["dragenter", "dragover"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      dropped = e.dataTransfer.files;
      zone.querySelector("p").textContent = dropped.length + " file(s) ready to upload";
    });
    input.addEventListener("change", function () { dropped = null; });

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var files = dropped || input.files;
      if (!files || !files.length) { alert("Choose at least one file to upload."); return; }
      var data = new FormData();
      data.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      for (var i = 0; i < files.length; i++) { data.append("files", files[i], files[i].name); }
      progress.hidden = false;
      upBar.value = 0; inBar.value = 0; inText.textContent = ""; errors.innerHTML = "";
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (ev) { if (ev.lengthComputable) { upBar.value = Math.round(100 * ev.loaded / ev.total); } };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = { error: "The server answered " + xhr.status + "." }; }
        if (xhr.status !== 202) {
          errors.innerHTML = '<li class="status-failed">' + escapeText(body.error || ("Upload failed: " + xhr.status)) + "</li>";
          return;
        }
        upBar.value = 100;
        inText.innerHTML = 'Batch <a href="' + body.url + '">#' + body.batch + "</a> queued…";
        pollBatch(body.status_url, inBar, inText, errors, function () {
          var more = document.createElement("a");
          more.href = location.pathname; more.textContent = " Show the new images";
          inText.appendChild(more);
        });
      };
      xhr.onerror = function () { errors.innerHTML = '<li class="status-failed">The upload failed (network error or the file is over the server limit).</li>'; };
      xhr.send(data);
    });
  });

  var status = document.querySelector("[data-batch-status]");
  if (status) {
    pollBatch(status.dataset.batchStatus, status.querySelector("[data-ingest-bar]"),
      status.querySelector("[data-ingest-text]"), null, function (p) {
        // Reload once when finished so the table shows every file's final state.
        if (!sessionStorage.getItem("batch-reloaded-" + p.id)) { sessionStorage.setItem("batch-reloaded-" + p.id, "1"); location.reload(); }
      });
  }
})();
