// The kanban's dragging: dropping a card on another column chooses that stage in the card's
// move form and submits it, the same form a user without JavaScript (or with a keyboard)
// submits with its button; the server checks the move either way.
(function () {
  "use strict";
  var board = document.getElementById("kanban");
  if (!board) { return; }
  var dragged = null;
  board.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".kanban-card");
    if (!card) { return; }
    dragged = card;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
  });
  board.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    dragged = null;
    board.querySelectorAll(".drop-target").forEach(function (column) { column.classList.remove("drop-target"); });
  });
  board.addEventListener("dragover", function (event) {
    var column = event.target.closest && event.target.closest(".kanban-column");
    if (!dragged || !column) { return; }
    event.preventDefault();
    board.querySelectorAll(".drop-target").forEach(function (other) {
      if (other !== column) { other.classList.remove("drop-target"); }
    });
    column.classList.add("drop-target");
  });
  board.addEventListener("drop", function (event) {
    var column = event.target.closest && event.target.closest(".kanban-column");
    if (!dragged || !column) { return; }
    event.preventDefault();
    var form = dragged.querySelector("form.move");
    var select = form && form.querySelector("select[name=to]");
    var stage = column.dataset.stage;
    if (!select || !select.querySelector("option[value='" + stage + "']")) { return; }
    select.value = stage;
    form.submit();
  });
})();
