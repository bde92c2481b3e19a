// The list page's live parts (docs/ui.md). Without this file the page works the same with
// its buttons; with it:
// - the filter form submits itself on every change (htmx swaps the results), except when a
//   date filter's preset turns to "custom", which only reveals its from–to inputs;
// - a lookup filter gets a search box that fills its options from the API as one types;
// - on a phone the filter panel starts folded, so the records come first;
// - a checkbox in the table's head selects every row for "export selected".
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target || !target.classList) return;
    if (target.classList.contains("lookup-find")) {
      // The search box only fills the select; choosing from the select filters.
      event.stopPropagation();
    } else if (target.classList.contains("preset") && target.value === "custom") {
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

  // A lookup filter's typeahead: the target's records matching the text (the API's `q`),
  // offered as options of the select next to it.
  function typeahead(select) {
    if (select.getAttribute("data-enhanced")) return;
    select.setAttribute("data-enhanced", "1");
    var input = document.createElement("input");
    input.type = "search";
    input.className = "lookup-find";
    input.placeholder = select.getAttribute("data-placeholder") || "";
    input.setAttribute("aria-label", input.placeholder);
    input.autocomplete = "off";
    select.parentNode.insertBefore(input, select);
    var timer = null;
    var asked = 0;
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); select.focus(); }
    });
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { find(select, input.value.trim(), ++asked); }, 250);
    });
    function find(select, text, ticket) {
      if (!text) return;
      var title = select.getAttribute("data-title");
      var url = select.getAttribute("data-search") + "?limit=20&q=" + encodeURIComponent(text) +
        "&fields=" + encodeURIComponent(title);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body || !body.data || ticket !== asked) return;
          for (var i = select.options.length - 1; i >= 0; i--) {
            var option = select.options[i];
            if (option.value && !option.selected) select.remove(i);
          }
          body.data.forEach(function (record) {
            var value = "eq." + record.id;
            for (var j = 0; j < select.options.length; j++) {
              if (select.options[j].value === value) return;
            }
            var option = document.createElement("option");
            option.value = value;
            option.textContent = record[title] || record.id;
            select.appendChild(option);
          });
        })
        .catch(function () {});
    }
  }

  function enhance() {
    var all = document.getElementById("select-all");
    if (all) all.classList.remove("hidden");
    var lookups = document.querySelectorAll("form#filters select[data-search]");
    for (var i = 0; i < lookups.length; i++) typeahead(lookups[i]);
    var panel = document.getElementById("filter-panel");
    if (panel && window.matchMedia && window.matchMedia("(max-width: 640px)").matches) {
      panel.removeAttribute("open");
    }
  }
  if (document.readyState !== "loading") enhance();
  else document.addEventListener("DOMContentLoaded", enhance);
  document.addEventListener("htmx:afterSettle", enhance);
})();
