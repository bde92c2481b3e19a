// The list page's live parts (docs/ui.md). Without this file the page works the same with
// its buttons; with it:
// - the filter form submits itself on every change (htmx swaps the results), except when a
//   date filter's preset turns to "custom", which only reveals its from–to inputs;
// - on a phone the filter panel starts folded, so the records come first;
// - a checkbox in the table's head selects every row for "export selected".
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target || !target.classList || !target.classList.contains("preset")) return;
    if (target.value === "custom") {
      // Keep htmx's form-level change trigger from sending an empty range.
      event.stopPropagation();
      var range = target.parentNode.querySelector(".custom input");
      if (range) range.focus();
    }
  }, true);

  // "Select all" on the page's rows, for the bulk export (shown only with this file).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target || target.id !== "select-all") return;
    var boxes = document.querySelectorAll("table#records input[name=id]");
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = target.checked;
  });

  function enhance() {
    var all = document.getElementById("select-all");
    if (all) all.classList.remove("hidden");
    var panel = document.getElementById("filter-panel");
    if (panel && window.matchMedia && window.matchMedia("(max-width: 640px)").matches) {
      panel.removeAttribute("open");
    }
  }
  if (document.readyState !== "loading") enhance();
  else document.addEventListener("DOMContentLoaded", enhance);
  document.addEventListener("htmx:afterSettle", enhance);
})();
