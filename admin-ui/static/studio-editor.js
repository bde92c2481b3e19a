// The studio's file editor (docs/studio.md, "The file editor"). The page works without
// this file: the textarea posts to the review, which checks the text on the server. With it:
//
// - line numbers beside the textarea, the lines with a problem marked;
// - the problems of the text as the admin types: 400 ms after the last keystroke the text
//   goes to POST /api/v1/admin/metadata/validate (same origin, the session cookie; the
//   server's cross-site check passes a same-origin fetch) and each problem of this file is
//   listed with its line:col (a click puts the cursor there), those of other files below;
// - key completion: the keys the file's JSON Schema (/api/v1/meta/schema/{kind}.json)
//   allows at the cursor's place in the YAML, found from the indentation of the lines
//   above, and the values of a key that has a fixed list (`type: `). It opens as a key is
//   typed or on Ctrl+Space; arrows choose, Enter or Tab takes, Escape closes.
(function () {
  "use strict";

  var DELAY = 400;
  // How many suggestions the list shows at most.
  var MAX_SUGGESTIONS = 50;

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

  function clear(element) {
    while (element.firstChild) element.removeChild(element.firstChild);
  }

  // ---- Where the cursor is in the YAML -------------------------------------------------

  // One line: its indentation, whether it starts a sequence item (`- `), the column its
  // content starts at, and the key it holds (null for none).
  function lineInfo(line) {
    var match = /^( *)((?:- +)*)(.*)$/.exec(line.replace(/\r$/, ""));
    var info = {
      indent: match[1].length,
      dash: match[2].length > 0,
      col: match[1].length + match[2].length,
      key: null,
      blank: false
    };
    var rest = match[3];
    if (rest === "" || rest.charAt(0) === "#") {
      info.blank = !info.dash;
      return info;
    }
    var key = /^"([^"]*)"\s*:(?:\s|$)/.exec(rest) || /^'([^']*)'\s*:(?:\s|$)/.exec(rest) ||
      /^([^\s#'"{\[][^:#]*?)\s*:(?:\s|$)/.exec(rest);
    if (key) info.key = key[1];
    return info;
  }

  // The path from the document's root to the mapping a key at `at` ({col, dash, indent})
  // on line `row` belongs to: keys, and "[]" for a sequence item. Null when a line above
  // is not something this reading understands.
  function pathAt(lines, row, at) {
    var path = [];
    var sequence = at.dash;
    var col = at.dash ? at.indent : at.col;
    if (at.dash) path.unshift("[]");
    for (var i = row - 1; i >= 0 && (sequence || col > 0); i--) {
      var info = lineInfo(lines[i]);
      if (info.blank) continue;
      if (!sequence) {
        if (info.col > col) continue;
        if (info.col === col) {
          // A sibling key; when it starts a sequence item, this mapping is that item.
          if (info.dash) {
            path.unshift("[]");
            sequence = true;
            col = info.col - 2;
          }
          continue;
        }
      } else {
        // Another item of the same sequence, or something inside one.
        if (info.dash && info.col - 2 === col) continue;
        if (info.col > col) continue;
      }
      if (info.key === null) return null;
      path.unshift(info.key);
      if (info.dash) {
        path.unshift("[]");
        sequence = true;
        col = info.col - 2;
      } else {
        sequence = false;
        col = info.col;
      }
    }
    return path;
  }

  // The keys already written in the mapping of a key at column `col` on line `row`.
  function siblingKeys(lines, row, col) {
    var keys = {};
    var i;
    for (i = row - 1; i >= 0; i--) {
      var above = lineInfo(lines[i]);
      if (above.blank || above.col > col) continue;
      if (above.col < col) break;
      if (above.key !== null) keys[above.key] = true;
      if (above.dash) break;
    }
    for (i = row + 1; i < lines.length; i++) {
      var below = lineInfo(lines[i]);
      if (below.blank || below.col > col) continue;
      if (below.col < col || below.dash) break;
      if (below.key !== null) keys[below.key] = true;
    }
    return keys;
  }

  // ---- The JSON Schema -------------------------------------------------------------------

  function Schema(document) {
    this.document = document;
  }

  // `node` with its `$ref`s followed (local references only).
  Schema.prototype.resolve = function (node) {
    for (var guard = 0; node && typeof node === "object" && node.$ref && guard < 20; guard++) {
      var ref = node.$ref;
      if (ref.indexOf("#/") !== 0) return null;
      node = this.document;
      var parts = ref.slice(2).split("/");
      for (var p = 0; p < parts.length && node; p++) {
        var part = parts[p].replace(/~1/g, "/").replace(/~0/g, "~");
        node = typeof node === "object" ? node[part] : undefined;
      }
    }
    return node && typeof node === "object" ? node : null;
  };

  // `node` and the schemas combined into it (anyOf, oneOf, allOf, then, else), resolved.
  Schema.prototype.variants = function (node, depth) {
    node = this.resolve(node);
    if (!node || depth > 8) return [];
    var all = [node];
    var self = this;
    ["anyOf", "oneOf", "allOf"].forEach(function (name) {
      (Array.isArray(node[name]) ? node[name] : []).forEach(function (sub) {
        all = all.concat(self.variants(sub, depth + 1));
      });
    });
    ["then", "else"].forEach(function (name) {
      if (node[name]) all = all.concat(self.variants(node[name], depth + 1));
    });
    return all;
  };

  // The schemas of the value at `path` (keys and "[]").
  Schema.prototype.at = function (path) {
    var nodes = [this.document];
    var self = this;
    path.forEach(function (segment) {
      var next = [];
      nodes.forEach(function (node) {
        self.variants(node, 0).forEach(function (variant) {
          if (segment === "[]") {
            if (variant.items && typeof variant.items === "object") next.push(variant.items);
          } else if (variant.properties && variant.properties[segment]) {
            next.push(variant.properties[segment]);
          } else if (variant.additionalProperties && typeof variant.additionalProperties === "object") {
            next.push(variant.additionalProperties);
          }
        });
      });
      nodes = next;
    });
    return nodes;
  };

  // The keys a mapping at `path` may hold, sorted.
  Schema.prototype.keys = function (path) {
    var keys = {};
    var self = this;
    this.at(path).forEach(function (node) {
      self.variants(node, 0).forEach(function (variant) {
        if (variant.properties) Object.keys(variant.properties).forEach(function (key) { keys[key] = true; });
      });
    });
    return Object.keys(keys).sort();
  };

  // The fixed values (`enum`, `const`) of the value at `path`.
  Schema.prototype.values = function (path) {
    var values = {};
    var self = this;
    this.at(path).forEach(function (node) {
      self.variants(node, 0).forEach(function (variant) {
        (Array.isArray(variant.enum) ? variant.enum : []).forEach(function (value) {
          if (typeof value === "string") values[value] = true;
        });
        if (typeof variant.const === "string") values[variant.const] = true;
      });
    });
    return Object.keys(values);
  };

  // ---- The editor ----------------------------------------------------------------------

  ready(function () {
    var textarea = document.getElementById("file-text");
    var box = document.getElementById("editor-box");
    if (!textarea || !box) return;
    var path = textarea.getAttribute("data-path");
    var status = document.getElementById("editor-status");
    var problems = document.getElementById("editor-problems");
    var elsewhere = document.getElementById("editor-elsewhere");
    var otherProblems = document.getElementById("editor-other-problems");

    var gutter = document.createElement("div");
    gutter.className = "editor-gutter";
    gutter.id = "editor-gutter";
    gutter.setAttribute("aria-hidden", "true");
    box.insertBefore(gutter, textarea);
    box.classList.add("with-gutter");

    var popup = document.createElement("ul");
    popup.className = "editor-completions";
    popup.id = "editor-completions";
    popup.setAttribute("role", "listbox");
    popup.setAttribute("aria-label", textarea.getAttribute("data-completions") || "");
    popup.hidden = true;
    box.appendChild(popup);
    textarea.setAttribute("aria-autocomplete", "list");
    textarea.setAttribute("aria-controls", popup.id);
    textarea.setAttribute("aria-expanded", "false");

    // -- Line numbers and marks.
    var marks = {};
    var shownLines = 0;
    function renderGutter() {
      var count = textarea.value.split("\n").length;
      if (count !== shownLines) {
        var lines = document.createDocumentFragment();
        for (var i = 1; i <= count; i++) {
          var number = document.createElement("span");
          number.textContent = String(i);
          number.setAttribute("data-line", String(i));
          lines.appendChild(number);
        }
        clear(gutter);
        gutter.appendChild(lines);
        shownLines = count;
      }
      Array.prototype.forEach.call(gutter.children, function (number, index) {
        var here = marks[index + 1];
        number.classList.toggle("error", !!here);
        if (here) number.title = here.join("\n");
        else number.removeAttribute("title");
      });
      gutter.scrollTop = textarea.scrollTop;
    }

    function lineHeight() {
      return parseFloat(window.getComputedStyle(textarea).lineHeight) || 20;
    }

    // Puts the cursor at line:col and scrolls it into view.
    function goTo(line, col) {
      var lines = textarea.value.split("\n");
      var offset = 0;
      for (var i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
      var row = lines[Math.min(line, lines.length) - 1] || "";
      offset += Math.max(0, Math.min(col - 1, row.length));
      textarea.focus();
      textarea.setSelectionRange(offset, offset);
      textarea.scrollTop = Math.max(0, (line - 1) * lineHeight() - textarea.clientHeight / 3);
      gutter.scrollTop = textarea.scrollTop;
    }

    // -- Problems as the admin types.
    var checks = 0;
    function setStatus(text) {
      status.textContent = text || "";
    }

    function showProblems(diagnostics) {
      var mine = diagnostics.filter(function (d) { return d.file === path; });
      var others = diagnostics.filter(function (d) { return d.file !== path; });
      clear(problems);
      clear(otherProblems);
      marks = {};
      mine.forEach(function (d) {
        var item = document.createElement("li");
        item.className = "diagnostic";
        item.setAttribute("data-file", d.file);
        item.setAttribute("data-line", String(d.line));
        item.setAttribute("data-col", String(d.col));
        var where = document.createElement("button");
        where.type = "button";
        where.className = "link where";
        where.textContent = d.line + ":" + d.col;
        where.addEventListener("click", function () { goTo(d.line, d.col); });
        item.appendChild(where);
        item.appendChild(document.createTextNode(" " + d.message));
        problems.appendChild(item);
        (marks[d.line] = marks[d.line] || []).push(d.line + ":" + d.col + " " + d.message);
      });
      others.forEach(function (d) {
        var item = document.createElement("li");
        item.className = "diagnostic";
        item.setAttribute("data-file", d.file);
        item.setAttribute("data-line", String(d.line));
        item.setAttribute("data-col", String(d.col));
        var where = document.createElement("code");
        where.textContent = d.file + ":" + d.line + ":" + d.col;
        item.appendChild(where);
        item.appendChild(document.createTextNode(" " + d.message));
        otherProblems.appendChild(item);
      });
      elsewhere.hidden = others.length === 0;
      setStatus(diagnostics.length ? "" : textarea.getAttribute("data-clean"));
      renderGutter();
    }

    function check() {
      var mine = ++checks;
      setStatus(textarea.getAttribute("data-checking"));
      var files = {};
      files[path] = textarea.value;
      fetch(textarea.getAttribute("data-validate"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ files: files })
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (body) {
          if (mine === checks) showProblems(body.diagnostics || []);
        })
        .catch(function () {
          if (mine === checks) setStatus(textarea.getAttribute("data-failed"));
        });
    }
    var checkSoon = debounce(check, DELAY);

    // -- Completion.
    var schema = null;
    var schemaUrl = textarea.getAttribute("data-schema");
    if (schemaUrl) {
      fetch(schemaUrl, { credentials: "same-origin", headers: { Accept: "application/schema+json, application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (document) { if (document) schema = new Schema(document); })
        .catch(function () { /* no completion; the editor still works */ });
    }

    var suggestion = { items: [], chosen: 0, from: 0, to: 0, suffix: "" };

    function closePopup() {
      popup.hidden = true;
      textarea.setAttribute("aria-expanded", "false");
      textarea.removeAttribute("aria-activedescendant");
    }

    function charWidth() {
      var probe = document.createElement("span");
      probe.className = "editor-probe";
      probe.textContent = "0000000000";
      box.appendChild(probe);
      var width = probe.getBoundingClientRect().width / 10;
      box.removeChild(probe);
      return width || 8;
    }

    function choose(index) {
      suggestion.chosen = index;
      Array.prototype.forEach.call(popup.children, function (item, i) {
        item.setAttribute("aria-selected", i === index ? "true" : "false");
        if (i === index) {
          textarea.setAttribute("aria-activedescendant", item.id);
          if (item.scrollIntoView) item.scrollIntoView({ block: "nearest" });
        }
      });
    }

    // Replaces the text between `from` and `to` by `text`, as typing would (undo works).
    function insert(from, to, text) {
      textarea.focus();
      textarea.setSelectionRange(from, to);
      var done = false;
      try { done = document.execCommand("insertText", false, text); } catch (e) { done = false; }
      if (!done) {
        textarea.setRangeText(text, from, to, "end");
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
      }
    }

    function accept(index) {
      var value = suggestion.items[index];
      if (value === undefined) return;
      closePopup();
      insert(suggestion.from, suggestion.to, value + suggestion.suffix);
    }

    // What can be written at the cursor: {items, from, to, suffix, row, col}, or null.
    function suggestions(explicit) {
      if (!schema || textarea.selectionStart !== textarea.selectionEnd) return null;
      var cursor = textarea.selectionStart;
      var text = textarea.value;
      var start = text.lastIndexOf("\n", cursor - 1) + 1;
      var before = text.slice(start, cursor);
      var after = text.slice(cursor, text.indexOf("\n", cursor) === -1 ? text.length : text.indexOf("\n", cursor));
      var lines = text.split("\n");
      var row = text.slice(0, start).split("\n").length - 1;
      var keyMatch = /^( *)((?:- +)?)([A-Za-z0-9_]*)$/.exec(before);
      if (keyMatch && /^\s*$/.test(after) && (explicit || keyMatch[3].length > 0)) {
        var at = { indent: keyMatch[1].length, dash: keyMatch[2].length > 0, col: keyMatch[1].length + keyMatch[2].length };
        var path = pathAt(lines, row, at);
        if (!path) return null;
        var taken = at.dash ? {} : siblingKeys(lines, row, at.col);
        var partial = keyMatch[3];
        var keys = schema.keys(path).filter(function (key) {
          return key.indexOf(partial) === 0 && (!taken[key] || key === partial);
        });
        return { items: keys, from: cursor - partial.length, to: cursor, suffix: ": ", row: row, col: before.length - partial.length };
      }
      var valueMatch = /^( *)((?:- +)?)([A-Za-z0-9_]+): +([A-Za-z0-9_]*)$/.exec(before);
      if (valueMatch && /^\s*$/.test(after)) {
        var keyAt = { indent: valueMatch[1].length, dash: valueMatch[2].length > 0, col: valueMatch[1].length + valueMatch[2].length };
        var keyPath = pathAt(lines, row, keyAt);
        if (!keyPath) return null;
        var written = valueMatch[4];
        var values = schema.values(keyPath.concat([valueMatch[3]])).filter(function (value) {
          return value.indexOf(written) === 0 && value !== written;
        });
        if (!explicit && written.length === 0 && !values.length) return null;
        return { items: values.sort(), from: cursor - written.length, to: cursor, suffix: "", row: row, col: before.length - written.length };
      }
      return null;
    }

    function openPopup(explicit) {
      var found = suggestions(explicit);
      if (!found || !found.items.length) {
        closePopup();
        return;
      }
      suggestion.items = found.items.slice(0, MAX_SUGGESTIONS);
      suggestion.from = found.from;
      suggestion.to = found.to;
      suggestion.suffix = found.suffix;
      clear(popup);
      suggestion.items.forEach(function (item, index) {
        var option = document.createElement("li");
        option.id = "completion-" + index;
        option.setAttribute("role", "option");
        option.textContent = item;
        option.addEventListener("mousedown", function (event) {
          event.preventDefault();
          accept(index);
        });
        popup.appendChild(option);
      });
      var style = window.getComputedStyle(textarea);
      var top = textarea.offsetTop + (parseFloat(style.paddingTop) || 0) + (found.row + 1) * lineHeight() - textarea.scrollTop;
      var left = textarea.offsetLeft + (parseFloat(style.paddingLeft) || 0) + found.col * charWidth() - textarea.scrollLeft;
      popup.hidden = false;
      var widest = Math.max(0, box.clientWidth - popup.offsetWidth);
      popup.style.top = Math.max(0, top) + "px";
      popup.style.left = Math.max(0, Math.min(left, widest)) + "px";
      textarea.setAttribute("aria-expanded", "true");
      choose(0);
    }

    textarea.addEventListener("keydown", function (event) {
      if (event.key === " " && event.ctrlKey) {
        event.preventDefault();
        openPopup(true);
        return;
      }
      if (!popup.hidden) {
        var count = suggestion.items.length;
        if (event.key === "ArrowDown") {
          event.preventDefault();
          choose((suggestion.chosen + 1) % count);
        } else if (event.key === "ArrowUp") {
          event.preventDefault();
          choose((suggestion.chosen + count - 1) % count);
        } else if (event.key === "Enter" || event.key === "Tab") {
          event.preventDefault();
          accept(suggestion.chosen);
        } else if (event.key === "Escape") {
          event.preventDefault();
          closePopup();
        }
        return;
      }
      // Enter keeps the line's indentation (that of its content after a `- `, and one step
      // more after a `key:`).
      if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey &&
          textarea.selectionStart === textarea.selectionEnd) {
        var cursor = textarea.selectionStart;
        var start = textarea.value.lastIndexOf("\n", cursor - 1) + 1;
        var before = textarea.value.slice(start, cursor);
        var indent = new Array(lineInfo(before).col + 1).join(" ");
        if (/:\s*$/.test(before) && !/^\s*#/.test(before)) indent += "  ";
        event.preventDefault();
        insert(cursor, cursor, "\n" + indent);
      }
    });

    textarea.addEventListener("input", function () {
      renderGutter();
      checkSoon();
      openPopup(false);
    });
    textarea.addEventListener("scroll", function () {
      gutter.scrollTop = textarea.scrollTop;
      closePopup();
    });
    textarea.addEventListener("blur", closePopup);
    textarea.addEventListener("click", closePopup);
    renderGutter();
  });
})();
