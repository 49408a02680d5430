// carlink SOC console: the live queue kept current by server-sent events (/soc/alarms/stream) and the case
// map drawn with Leaflet. No build step. The queue re-reads its rows every 10 s and after each (re)connect,
// so an event missed while the stream was down only delays a row; it never loses one.
(() => {
  "use strict";

  const REFRESH_MS = 10000;
  const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const clockFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

  function timeElement(iso) {
    const element = document.createElement("time");
    element.setAttribute("datetime", iso);
    const moment = new Date(iso);
    if (!Number.isNaN(moment.getTime())) {
      const today = moment.toDateString() === new Date().toDateString();
      element.title = moment.toISOString();
      element.textContent = (today ? clockFormat : timeFormat).format(moment);
    }
    return element;
  }

  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach((element) => {
      element.replaceWith(timeElement(element.getAttribute("datetime")));
    });
  }

  // Queue order (docs/security.md): cars with a package first, then most severe, then newest.
  function sortKey(row) {
    return [
      row.dataset.withoutPackage === "yes" ? 1 : 0,
      -Number(row.dataset.severity),
      -Date.parse(row.dataset.lastAt),
      -Number(row.dataset.alarmId),
    ];
  }

  function before(a, b) {
    const ka = sortKey(a);
    const kb = sortKey(b);
    for (let i = 0; i < ka.length; i += 1) {
      if (ka[i] !== kb[i]) return ka[i] < kb[i];
    }
    return false;
  }

  function badge(className, text) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  function liveQueue(body) {
    const labels = JSON.parse(body.dataset.labels || "{}");
    const live = document.getElementById("soc-live");
    const label = (kind, code) => (labels[kind] && labels[kind][code]) || String(code);
    // The page's words in the viewer's language (console.py _labels); English when a page lacks them.
    const word = (key, fallback) => (labels.words && labels.words[key]) || fallback;

    function status(state, text) {
      if (!live) return;
      live.dataset.live = state;
      live.textContent = text;
    }

    function cells(row, event) {
      row.replaceChildren();
      const severity = document.createElement("td");
      severity.className = "severity";
      severity.append(badge(`badge sev sev-${event.severity}`, label("severities", event.severity)));
      const trigger = document.createElement("td");
      trigger.className = "trigger";
      trigger.append(label("triggers", event.trigger));
      const more = (event.triggers || []).length - 1;
      if (more > 0) trigger.append(badge("more", ` ${word("more", "+%(count)s more").replace("%(count)s", String(more))}`));
      if (event.without_package) trigger.append(" ", badge("badge flag", word("no_package", "no package")));
      const car = document.createElement("td");
      car.className = "car";
      const link = document.createElement("a");
      link.className = "mono vin";
      link.href = `/soc/alarms/${event.id}`;
      link.textContent = event.vin;
      car.append(link, badge("model", row.dataset.model || ""));
      const state = document.createElement("td");
      state.className = "state";
      state.append(badge(`badge state state-${event.state}`, label("states", event.state)));
      const signals = document.createElement("td");
      signals.className = "signals";
      signals.textContent = String(event.signals);
      const last = document.createElement("td");
      last.className = "last";
      last.append(timeElement(event.last_at));
      row.append(severity, trigger, car, state, signals, last);
    }

    function place(row) {
      row.remove();
      const next = [...body.querySelectorAll("tr[data-alarm-id]")].find((other) => before(row, other));
      // After the last case but above the "N more cases" line, which stays the last row.
      body.insertBefore(row, next || document.getElementById("soc-queue-more"));
    }

    function show(event) {
      if (!event || typeof event.id !== "number") return;
      let row = body.querySelector(`tr[data-alarm-id="${event.id}"]`);
      if (row && Number(row.dataset.version) > Number(event.version)) return; // a late event: keep the newer
      if (event.state === "closed") {
        row?.remove();
      } else {
        if (!row) {
          row = document.createElement("tr");
          row.dataset.alarmId = String(event.id);
          row.dataset.model = "";
          scheduleRefresh(1000); // the row's model name comes with the next read of the queue
        } else {
          row.dataset.model = row.querySelector(".model")?.textContent || "";
        }
        row.className = `soc-case severity-${event.severity}${event.without_package ? " without-package" : ""}`;
        Object.assign(row.dataset, {
          state: event.state,
          severity: String(event.severity),
          lastAt: event.last_at,
          withoutPackage: event.without_package ? "yes" : "no",
          version: String(event.version),
          signals: String(event.signals),
        });
        cells(row, event);
        place(row);
        row.classList.add("changed");
      }
      const empty = document.getElementById("soc-queue-empty");
      if (body.querySelector("tr[data-alarm-id]")) empty?.remove();
    }

    let refreshing = null;
    let timer = null;

    async function refresh() {
      if (refreshing) return refreshing;
      refreshing = (async () => {
        try {
          const response = await fetch(body.dataset.fragmentUrl, { headers: { Accept: "text/html" } });
          if (response.redirected || response.status === 401 || response.status === 403) {
            window.location.reload(); // signed out meanwhile: the page shows the sign-in
            return;
          }
          if (!response.ok) return;
          const template = document.createElement("template");
          template.innerHTML = `<table><tbody>${await response.text()}</tbody></table>`;
          const rows = template.content.querySelector("tbody");
          localise(rows);
          body.replaceChildren(...rows.children);
        } catch {
          status("offline", word("retrying", "offline: retrying"));
        } finally {
          refreshing = null;
        }
      })();
      return refreshing;
    }

    function scheduleRefresh(delay) {
      if (timer) return;
      timer = window.setTimeout(() => {
        timer = null;
        refresh();
      }, delay);
    }

    async function welcomeCalls() {
      const section = document.getElementById("welcome-calls");
      if (!section) return;
      const response = await fetch("/soc/welcome-calls", { headers: { Accept: "text/html" } });
      if (!response.ok || response.redirected) return;
      const template = document.createElement("template");
      template.innerHTML = await response.text();
      const fresh = template.content.getElementById("welcome-calls");
      if (fresh) {
        localise(fresh);
        section.replaceWith(fresh);
      }
    }

    const stream = new EventSource(body.dataset.streamUrl);
    stream.addEventListener("open", () => {
      status("live", word("live", "live"));
      refresh(); // whatever happened while the stream was down
    });
    stream.addEventListener("error", () => status("offline", word("reconnecting", "offline: reconnecting")));
    stream.addEventListener("alarm", (message) => show(JSON.parse(message.data)));
    stream.addEventListener("activation", () => welcomeCalls());
    window.setInterval(refresh, REFRESH_MS);
  }

  // The case's track: the line and the last position on a map. Without a tile server the line is drawn
  // on an empty map all the same; the table and the coordinates stand beside it.
  function caseMap(element) {
    if (typeof window.L === "undefined") {
      element.dataset.map = "unavailable";
      return;
    }
    const L = window.L;
    const track = JSON.parse(element.dataset.track || "[]");
    const position = JSON.parse(element.dataset.position || "null");
    const map = L.map(element, { scrollWheelZoom: false });
    if (element.dataset.tiles) {
      L.tileLayer(element.dataset.tiles, {
        maxZoom: 19,
        attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
      }).addTo(map);
    }
    const points = track.length ? track : position ? [position] : [];
    if (track.length) {
      L.polyline(track, { color: "#a3261b", weight: 4 }).addTo(map);
    }
    const last = position || (track.length ? track[track.length - 1] : null);
    if (last) {
      L.circleMarker(last, { radius: 8, color: "#0b4f6c", fillOpacity: 0.8 })
        .addTo(map)
        .bindTooltip(`Last position ${last[0].toFixed(5)}, ${last[1].toFixed(5)}`);
    }
    if (points.length > 1) {
      map.fitBounds(L.latLngBounds(points.concat(last ? [last] : [])), { padding: [24, 24] });
    } else if (last) {
      map.setView(last, 15);
    } else {
      map.setView([51.1657, 10.4515], 5); // no position known: central Europe
    }
    element.dataset.map = "ready";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const body = document.getElementById("soc-queue-rows");
    if (body) liveQueue(body);
    const map = document.getElementById("case-map");
    if (map) caseMap(map);
  });
})();
