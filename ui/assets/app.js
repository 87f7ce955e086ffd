// registryd web UI: small enhancements on pages that work without them.
// No framework, nothing loaded from elsewhere; the CSP allows only this file.
(function () {
  "use strict";
  var live = document.getElementById("live");
  function say(msg) { if (live) { live.textContent = ""; live.textContent = msg; } }

  // Copy buttons: hidden without JavaScript (the text is on the page to
  // select by hand), shown and wired here.
  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "visually-hidden";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.setAttribute("aria-label", "Copy " + b.getAttribute("data-copy"));
    b.addEventListener("click", function () {
      var text = b.getAttribute("data-copy");
      copy(text).then(function () {
        b.classList.add("done");
        b.textContent = "Copied";
        say("Copied " + text);
        setTimeout(function () { b.classList.remove("done"); b.textContent = "Copy"; }, 1500);
      }, function () { say("Could not copy; select the text instead."); });
    });
  });

  // Tag selection: select all, shift-click ranges, a live count, and the
  // delete button enabled only with a selection.
  var form = document.getElementById("tags-form");
  if (form) {
    var boxes = Array.prototype.slice.call(form.querySelectorAll('input[type=checkbox][name=tag]'));
    var all = form.querySelector("[data-select-all]");
    var btn = form.querySelector("[data-needs-selection]");
    var count = form.querySelector("[data-selection-count]");
    var lastIdx = -1;
    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      if (btn) { btn.disabled = n === 0; }
      if (count) { count.textContent = n ? n + " selected" : ""; }
      if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
    }
    if (all) {
      all.hidden = false;
      all.addEventListener("change", function () { boxes.forEach(function (b) { b.checked = all.checked; }); update(); });
    }
    boxes.forEach(function (b, i) {
      b.addEventListener("click", function (ev) {
        if (ev.shiftKey && lastIdx >= 0) {
          var lo = Math.min(lastIdx, i), hi = Math.max(lastIdx, i);
          for (var j = lo; j <= hi; j++) { boxes[j].checked = b.checked; }
        }
        lastIdx = i;
        update();
      });
    });
    update();
  }

  // "/" focuses the search box, as on most sites with one.
  var search = document.querySelector("[data-hotkey='/']");
  if (search) {
    document.addEventListener("keydown", function (ev) {
      var t = ev.target;
      if (ev.key === "/" && !ev.ctrlKey && !ev.metaKey && !ev.altKey &&
          !(t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable))) {
        ev.preventDefault();
        search.focus();
        search.select();
      }
    });
  }

  // A typed confirmation (the repository's name) enables its button.
  document.querySelectorAll("input[data-confirm-value]").forEach(function (input) {
    var button = document.getElementById(input.getAttribute("data-confirm-button"));
    if (!button) { return; }
    function check() { button.disabled = input.value !== input.getAttribute("data-confirm-value"); }
    input.addEventListener("input", check);
    check();
  });
})();
