// Keel's live parts (docs/ui.md): the notification bell and toasts over the SSE stream,
// `/` to focus search, confirmations for destructive actions. Every page works without
// this file; it only adds what needs a live connection or saves a reload.
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // The bell: a live count and a toast per new notification; on the home page the new
  // notification is also added to the list.
  function stream() {
    var url = document.body.getAttribute("data-stream");
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("notification", function (event) {
      var item;
      try { item = JSON.parse(event.data); } catch (e) { return; }
      var badge = document.getElementById("bell-count");
      if (badge) {
        var count = parseInt(badge.textContent, 10) || 0;
        badge.textContent = count >= 10 ? "10+" : String(count + 1);
        badge.classList.remove("hidden");
      }
      toast(item);
      var list = document.getElementById("notification-list");
      if (list) {
        var empty = list.querySelector(".empty");
        if (empty) empty.remove();
        var li = document.createElement("li");
        li.className = "unread";
        li.appendChild(link(item));
        list.insertBefore(li, list.firstChild);
      }
    });
  }

  function link(item) {
    var node;
    if (item.object && item.record_id) {
      node = document.createElement("a");
      node.href = "/app/" + encodeURIComponent(item.object) + "/" + encodeURIComponent(item.record_id);
    } else {
      node = document.createElement("span");
    }
    node.textContent = item.message;
    return node;
  }

  function toast(item) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var node = document.createElement("div");
    node.className = "toast";
    node.setAttribute("role", "status");
    node.appendChild(link(item));
    box.appendChild(node);
    setTimeout(function () { node.remove(); }, 8000);
  }

  // `/` focuses the search box, unless the user is typing somewhere.
  function slashFocus() {
    document.addEventListener("keydown", function (event) {
      if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
      var target = event.target;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
      var search = document.querySelector("[data-slash-focus]");
      if (search) { event.preventDefault(); search.focus(); }
    });
  }

  // `data-confirm="…"` on a form or button asks before a destructive action.
  function confirmations() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var button = event.submitter;
      var message = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) event.preventDefault();
    }, true);
  }

  ready(function () {
    stream();
    slashFocus();
    confirmations();
  });
})();
