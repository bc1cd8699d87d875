/* Incident list page (/incidents/list): move incidents along the closed loop in place.
 *
 * Each open incident's row has one button per state the loop allows next (the server's
 * TRANSITIONS, as the API's allowed_transitions). A click posts {state, note} to
 * POST /api/incidents/<id>/transitions; on success the row shows the new state, its
 * overdue badge and the buttons the answer allows; on a 409 (someone else moved it
 * first) or a 400 the API's message is shown next to the row, and after a 409 the row
 * takes the state the API reports, so the right buttons are offered. The handler is the
 * logged-in account (the session cookie, with the page's CSRF token in X-CSRFToken).
 * Text is set with textContent only: nothing from the server is parsed as HTML.
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("incidents-list-config").textContent);
  var L = cfg.labels;

  if (window.MapsvcHeatmap && window.MapsvcHeatmap.wireFilterForm) {
    window.MapsvcHeatmap.wireFilterForm(); // grid list limited to the chosen community
  }

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function stateLabel(code) {
    return cfg.states[code] || code;
  }

  function message(row, text, kind) {
    var box = row.querySelector("[data-msg]");
    box.textContent = text || "";
    box.className = "msg" + (kind ? " msg-" + kind : "");
  }

  function badge(kind) {
    var span = document.createElement("span");
    span.className = "badge badge-" + (kind === "to_confirm" ? "confirm" : kind);
    span.setAttribute("data-badge", kind);
    span.textContent = L[kind];
    return span;
  }

  /* The row as the API describes the incident: state, badges, next-step buttons. */
  function showState(row, state, allowed, inc) {
    row.setAttribute("data-state", state);
    row.querySelector("[data-state-label]").textContent = stateLabel(state);
    var open = state !== "closed";
    if (inc) {
      var badges = row.querySelector(".badges");
      badges.textContent = "";
      if (inc.overdue) {
        badges.appendChild(badge(open ? "overdue" : "late"));
      }
      if (inc.location_to_confirm && open) {
        badges.appendChild(badge("to_confirm"));
      }
      row.classList.toggle("is-overdue", Boolean(inc.overdue && open));
    }
    var moves = row.querySelector("[data-moves]");
    moves.textContent = "";
    (open ? allowed || [] : []).forEach(function (to) {
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-to", to);
      b.textContent = "→ " + stateLabel(to);
      moves.appendChild(b);
    });
    var note = row.querySelector("[data-note]");
    if (note && !open) {
      note.remove();
    } else if (!note && open) {
      note = document.createElement("input");
      note.type = "text";
      note.className = "note";
      note.setAttribute("data-note", "");
      note.placeholder = L.note;
      moves.parentNode.insertBefore(note, moves.nextSibling);
    }
  }

  function move(row, to, button) {
    var note = row.querySelector("[data-note]");
    var buttons = row.querySelectorAll("[data-moves] button");
    Array.prototype.forEach.call(buttons, function (b) {
      b.disabled = true;
    });
    message(row, L.saving, "busy");
    var url = cfg.transitions_url.replace("__ID__", encodeURIComponent(row.getAttribute("data-id")));
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify({ state: to, note: note && note.value.trim() ? note.value.trim() : null }),
    })
      .then(function (resp) {
        return resp
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            return { ok: resp.ok, status: resp.status, body: body };
          });
      })
      .then(function (r) {
        if (r.ok) {
          showState(row, r.body.state, r.body.allowed_transitions, r.body);
          message(row, L.moved + " " + stateLabel(r.body.state), "ok");
          return;
        }
        if (r.status === 409 && r.body.state) {
          showState(row, r.body.state, r.body.allowed, null);
        } else {
          Array.prototype.forEach.call(buttons, function (b) {
            b.disabled = false;
          });
        }
        message(row, L.not_moved + " " + (r.body.error || "HTTP " + r.status), "error");
      })
      .catch(function () {
        Array.prototype.forEach.call(buttons, function (b) {
          b.disabled = false;
        });
        message(row, L.failed, "error");
      });
    if (button) {
      button.blur();
    }
  }

  var table = document.getElementById("incident-table");
  if (table) {
    table.addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-to]");
      if (!b || b.disabled) {
        return;
      }
      move(b.closest("tr"), b.getAttribute("data-to"), b);
    });
  }
})();
