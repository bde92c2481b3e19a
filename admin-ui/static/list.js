// The list page's live parts (docs/ui.md). Without this file the page works the same with
// its buttons; with it:
// - the filter form submits itself on every change (htmx swaps the results), except when a
//   date filter's preset turns to "custom", which only reveals its from–to inputs;
// - on a phone the filter panel starts folded, so the records come first.
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

  function fold() {
    var panel = document.getElementById("filter-panel");
    if (panel && window.matchMedia && window.matchMedia("(max-width: 640px)").matches) {
      panel.removeAttribute("open");
    }
  }
  if (document.readyState !== "loading") fold();
  else document.addEventListener("DOMContentLoaded", fold);
  document.addEventListener("htmx:afterSettle", fold);
})();
