// carlink portal: local times, remote services through the JSON API (RMT-1) and live vehicle status from
// the vehicle's server-sent event stream. No build step; loaded after htmx.
(() => {
  "use strict";

  // Times in the page's language (carlink.i18n sets <html lang>), in the browser's own time zone.
  const language = document.documentElement.lang || undefined;
  const timeFormat = new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short" });
  // A command only moves forward: a late 'delivered' never hides a 'performed' (accepted -> delivered -> end).
  const RANK = { accepted: 0, delivered: 1, performed: 2, error: 2, expired: 2 };
  const KEEP_COMMANDS = 8;

  const clockFormat = new Intl.DateTimeFormat(language, { timeStyle: "short" });

  // Times arrive in UTC; show them in the browser's own time zone (today's by the clock alone), and the UTC
  // time on hover.
  function localiseTime(element) {
    const moment = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(moment.getTime())) return;
    const today = moment.toDateString() === new Date().toDateString();
    element.title = moment.toISOString();
    element.textContent = (today ? clockFormat : timeFormat).format(moment);
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(localiseTime);
  }

  function remoteServices(panel) {
    const labels = JSON.parse(panel.dataset.labels || "{}");
    const states = JSON.parse(panel.dataset.states || "{}");
    const list = panel.querySelector("#commands");
    const problem = panel.querySelector("#remote-error");
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRF-Token": panel.dataset.csrf,
    };

    function say(message) {
      problem.textContent = message;
      problem.hidden = !message;
    }

    function show(command, label) {
      if (!command || !command.id || !(command.state in RANK)) return;
      let item = list.querySelector(`[data-command-id="${CSS.escape(command.id)}"]`);
      if (!item) {
        item = document.createElement("li");
        item.dataset.commandId = command.id;
        item.dataset.state = command.state;
        for (const part of ["what", "state", "reason", "at"]) {
          const span = document.createElement("span");
          span.className = part;
          item.append(span, " ");
        }
        item.querySelector(".what").textContent = labels[command.type] || command.type || "Command";
        const sent = document.createElement("time");
        sent.setAttribute("datetime", command.created_at || new Date().toISOString());
        localiseTime(sent);
        item.querySelector(".at").append(sent);
        list.prepend(item);
        panel.querySelector("#no-commands")?.remove();
        while (list.children.length > KEEP_COMMANDS) list.lastElementChild.remove();
      }
      // The event stream may announce a command before the answer to our own request names it precisely.
      if (label) item.querySelector(".what").textContent = label;
      if (RANK[command.state] < RANK[item.dataset.state]) return;
      item.dataset.state = command.state;
      item.querySelector(".state").textContent = states[command.state] || command.state;
      item.querySelector(".reason").textContent = command.reason || "";
    }

    async function send(form, button) {
      const pin = form.querySelector("input[name=pin]");
      let url = panel.dataset.commandsUrl;
      let body;
      if (pin) {
        url = panel.dataset.unlockUrl; // the server answers the PIN challenge for the portal
        body = { pin: pin.value };
      } else {
        const params = JSON.parse(button?.dataset.params || "{}");
        for (const input of form.querySelectorAll("[data-param]")) {
          params[input.dataset.param] = input.dataset.kind === "int" ? parseInt(input.value, 10) : Number(input.value);
        }
        body = { type: form.dataset.command, params };
      }
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers,
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        const refused = panel.dataset.refused || "carlink could not send this (status %(status)s).";
        say(answer?.error?.message || refused.replace("%(status)s", String(response.status)));
        return null;
      }
      if (pin) pin.value = "";
      show(answer, button?.textContent.trim());
      return answer;
    }

    panel.addEventListener("submit", async (event) => {
      const form = event.target.closest("form[data-command]");
      if (!form) return;
      event.preventDefault();
      const buttons = form.querySelectorAll("button");
      say("");
      buttons.forEach((b) => { b.disabled = true; });
      form.setAttribute("aria-busy", "true");
      try {
        const command = await send(form, event.submitter);
        if (command) panel.dispatchEvent(new CustomEvent("carlink:sent", { detail: command }));
      } catch {
        say(panel.dataset.unreachable || "carlink could not be reached; check your connection and try again.");
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
        form.removeAttribute("aria-busy");
      }
    });

    // After a gap in the event stream, ask for the commands still under way.
    async function recheck(waitSeconds = 0) {
      for (const item of list.querySelectorAll("li[data-state=accepted], li[data-state=delivered]")) {
        const url = `${panel.dataset.commandsUrl}/${encodeURIComponent(item.dataset.commandId)}?wait=${waitSeconds}`;
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) show(await response.json());
      }
    }

    return { show, recheck };
  }

  function watchVehicle(root) {
    const panel = document.querySelector("#remote[data-commands-url]");
    const remote = panel ? remoteServices(panel) : null;
    const stream = new EventSource(root.dataset.events);
    let gap = false;
    const refreshStatus = () => htmx.trigger(document.body, "carlink:status");

    stream.addEventListener("telemetry", refreshStatus);
    stream.addEventListener("connection", refreshStatus);
    stream.addEventListener("command", (event) => {
      const command = JSON.parse(event.data);
      if (remote && command.command !== "WAKE") remote.show({ ...command, type: command.command });
    });
    stream.addEventListener("error", () => { gap = true; });
    stream.addEventListener("open", () => {
      if (!gap) return;
      gap = false;
      refreshStatus();
      remote?.recheck().catch(() => {});
    });
    // Sent while the stream was away: follow the command by a long poll instead.
    panel?.addEventListener("carlink:sent", () => {
      if (stream.readyState !== EventSource.OPEN) remote.recheck(25).catch(() => {});
    });
    window.addEventListener("pagehide", () => stream.close());
  }

  // A table that scrolls sideways (a phone's width: carlink.css) must be reachable by keyboard to scroll.
  function focusableScrollers() {
    document.querySelectorAll("table, .table-wrap").forEach((box) => {
      const scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) box.setAttribute("tabindex", "0");
    });
  }

  htmx.onLoad(localiseTimes);
  htmx.onLoad(focusableScrollers);
  window.addEventListener("resize", focusableScrollers);
  document.addEventListener("DOMContentLoaded", () => {
    const vehicle = document.querySelector(".vehicle-page[data-events]");
    if (vehicle) watchVehicle(vehicle);
  });
})();
