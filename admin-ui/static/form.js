// Record forms (docs/ui.md, "Forms"): 查重 while typing on the fields of the object's
// duplicate keys, and a search box over a lookup's target when its select cannot list every
// record. The form works without this file: the server checks duplicates on save, and the
// select offers the first records.
(function () {
  "use strict";

  // At least 400 ms between duplicate lookups of one key: each counts against the user's
  // 查重 budget (docs/api.md).
  var DUPLICATE_DELAY = 600;
  var SEARCH_DELAY = 300;

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  function debounce(fn, delay) {
    var timer = null;
    return function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(fn, delay);
    };
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          var error = new Error("HTTP " + response.status);
          error.status = response.status;
          throw error;
        }
        return response.json();
      });
  }

  function fieldInput(name) {
    return document.getElementById("field-" + name);
  }

  function duplicates(form) {
    var keys;
    try { keys = JSON.parse(form.getAttribute("data-duplicate-keys") || "[]"); } catch (e) { return; }
    var object = form.getAttribute("data-object");
    var own = form.getAttribute("data-record-id");
    var pausedUntil = 0;
    keys.forEach(function (fields) {
      var inputs = fields.map(fieldInput);
      if (inputs.some(function (input) { return !input || !input.hasAttribute("data-duplicate-key"); })) return;
      var box = document.getElementById("duplicates-" + fields[fields.length - 1]);
      if (!box) return;
      var last = "";
      var check = debounce(function () {
        var values = inputs.map(function (input) { return input.value.trim(); });
        if (values.some(function (value) { return value === ""; })) {
          last = "";
          show(box, [], form);
          return;
        }
        var query = fields.map(function (name, index) {
          return encodeURIComponent(name) + "=" + encodeURIComponent(values[index]);
        }).join("&");
        if (query === last || Date.now() < pausedUntil) return;
        last = query;
        getJson("/api/v1/records/" + encodeURIComponent(object) + "/duplicates?" + query)
          .then(function (body) {
            var matches = (body.data || []).filter(function (found) { return found.id !== own; });
            show(box, matches, form);
          })
          .catch(function (error) {
            // The budget is spent: stop asking for a minute; the save still checks.
            if (error.status === 429) pausedUntil = Date.now() + 60000;
            last = "";
          });
      }, DUPLICATE_DELAY);
      inputs.forEach(function (input) { input.addEventListener("input", check); });
    });
  }

  function show(box, matches, form) {
    while (box.firstChild) box.removeChild(box.firstChild);
    if (!matches.length) {
      box.hidden = true;
      return;
    }
    var title = document.createElement("strong");
    title.textContent = form.getAttribute("data-text-duplicates");
    box.appendChild(title);
    var list = document.createElement("ul");
    matches.forEach(function (found) {
      var item = document.createElement("li");
      item.className = "duplicate";
      var parts = [found.title || found.id];
      if (found.owner_name) parts.push(form.getAttribute("data-text-owner").replace("{name}", found.owner_name));
      if (found.pool) parts.push(form.getAttribute("data-text-pool").replace("{pool}", found.pool));
      item.textContent = parts.join(" · ");
      list.appendChild(item);
    });
    box.appendChild(list);
    box.hidden = false;
  }

  function lookups(form) {
    var boxes = form.querySelectorAll("input.lookup-search");
    Array.prototype.forEach.call(boxes, function (box) {
      var select = document.getElementById(box.getAttribute("data-for"));
      if (!select) return;
      box.hidden = false;
      var target = box.getAttribute("data-target");
      var titleField = box.getAttribute("data-title");
      var search = debounce(function () {
        var text = box.value.trim();
        if (!text) return;
        var url = "/api/v1/records/" + encodeURIComponent(target) + "?q=" + encodeURIComponent(text) +
          "&limit=10&fields=" + encodeURIComponent(titleField);
        getJson(url).then(function (body) { fill(select, body.data || [], titleField, form); })
          .catch(function () { /* the select keeps its options */ });
      }, SEARCH_DELAY);
      box.addEventListener("input", search);
    });
  }

  // Replaces a lookup's options by the search results, keeping "none" and the current choice.
  function fill(select, records, titleField, form) {
    var keep = select.value;
    Array.prototype.slice.call(select.options).forEach(function (option) {
      if (option.value !== "" && option.value !== keep) option.remove();
    });
    records.forEach(function (record) {
      if (record.id === keep) return;
      var option = document.createElement("option");
      option.value = record.id;
      var title = record[titleField];
      option.textContent = title === null || title === undefined || title === "" ? record.id : String(title);
      select.appendChild(option);
    });
    if (!records.length) {
      var none = document.createElement("option");
      none.disabled = true;
      none.textContent = form.getAttribute("data-text-no-results");
      select.appendChild(none);
    } else if (!keep) {
      select.value = records[0].id;
    }
  }

  ready(function () {
    var form = document.getElementById("record-form");
    if (!form) return;
    duplicates(form);
    lookups(form);
    var errors = document.getElementById("form-errors") || document.getElementById("conflict");
    if (errors && errors.focus) errors.focus();
  });
})();
