// The studio's field editor (docs/studio.md, "Changing an object"): an "Add an option"
// button that adds option rows beyond the empty ones the page offers, and the options shown
// only for a choice field. The form works without this file: it always offers a few empty
// option rows, and the server ignores the options of a field that is not a choice.
(function () {
  "use strict";

  var CHOICE_TYPES = ["choice", "multi_choice"];
  // The most rows the server reads (MAX_ROWS in objects.rs).
  var MAX_ROWS = 500;

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // A copy of `row` for option `index`: its inputs emptied, names and ids renumbered.
  function newRow(row, index) {
    var copy = row.cloneNode(true);
    copy.setAttribute("data-index", String(index));
    copy.classList.remove("invalid");
    Array.prototype.forEach.call(copy.querySelectorAll(".field-error"), function (error) {
      error.remove();
    });
    Array.prototype.forEach.call(copy.querySelectorAll("input, label"), function (element) {
      ["name", "id", "for"].forEach(function (attribute) {
        var value = element.getAttribute(attribute);
        if (value) {
          element.setAttribute(attribute, value.replace(/^(options?[\/-])\d+/, "$1" + index));
        }
      });
      if (element.tagName === "INPUT") {
        if (element.type === "checkbox") element.checked = false;
        else element.value = "";
      }
    });
    return copy;
  }

  ready(function () {
    var options = document.getElementById("field-options");
    if (!options) return;
    var rows = options.querySelector(".option-rows");
    var add = document.getElementById("add-option");
    var next = parseInt(options.getAttribute("data-next"), 10) || 0;
    if (rows && add) {
      add.hidden = false;
      add.addEventListener("click", function () {
        var last = rows.querySelector(".option-row:last-child");
        if (!last || next >= MAX_ROWS) return;
        var row = newRow(last, next);
        next += 1;
        rows.appendChild(row);
        var key = row.querySelector("input[name$='/key']");
        if (key) key.focus();
      });
    }
    var type = document.getElementById("field-type");
    if (!type) return;
    function showOptions() {
      options.hidden = CHOICE_TYPES.indexOf(type.value) < 0;
    }
    type.addEventListener("change", showOptions);
    showOptions();
  });
})();
