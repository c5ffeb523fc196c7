// Vieter's web interface: progressive enhancement only. Every page works without this file; with it,
// package searches update as you type, a running job's log and state arrive live, and job lists follow
// the jobs' states (Server-Sent Events).
"use strict";

(function () {
  // Search as you type: the form's GET answer, rows only, replaces the table.
  const form = document.querySelector("form[data-live-search]");
  if (form) {
    const target = document.getElementById(form.dataset.liveSearch);
    let timer = null;
    let controller = null;
    const refresh = () => {
      const params = new URLSearchParams(new FormData(form));
      params.delete("page");
      const url = form.action + "?" + params.toString();
      if (controller) controller.abort();
      controller = new AbortController();
      params.set("fragment", "rows");
      fetch(form.action + "?" + params.toString(), { signal: controller.signal, credentials: "same-origin" })
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.status))))
        .then((html) => {
          target.innerHTML = html;
          history.replaceState(null, "", url);
        })
        .catch((e) => {
          if (e.name !== "AbortError") form.submit();
        });
    };
    form.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    });
    form.addEventListener("change", (e) => {
      if (e.target.tagName === "SELECT") {
        clearTimeout(timer);
        refresh();
      }
    });
  }

  // A running job: its log grows and its head (state, timeline, cause) changes without a reload.
  const log = document.querySelector("pre[data-events]");
  if (log && window.EventSource) {
    const follow = document.getElementById("follow");
    const head = document.getElementById("job-head");
    const source = new EventSource(log.dataset.events);
    const atEnd = () => {
      if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
    };
    atEnd();
    source.addEventListener("log", (e) => {
      log.insertAdjacentHTML("beforeend", e.data);
      atEnd();
    });
    source.addEventListener("state", (e) => {
      if (head) head.innerHTML = e.data;
    });
    source.addEventListener("end", () => {
      source.close();
      log.dataset.ended = "true";
    });
    if (follow) follow.addEventListener("change", atEnd);
  }

  // Live job lists: when jobs change, the page is fetched again and each element with
  // data-live-jobs (and an id) takes the new page's content. One fetch at a time; changes during a
  // fetch cause one more.
  const live = document.querySelectorAll("[data-live-jobs][id]");
  if (live.length > 0 && window.EventSource && window.DOMParser) {
    let busy = false;
    let again = false;
    const reload = () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.status))))
        .then((html) => {
          const fresh = new DOMParser().parseFromString(html, "text/html");
          live.forEach((el) => {
            const next = fresh.getElementById(el.id);
            if (next) el.innerHTML = next.innerHTML;
          });
          document.documentElement.dataset.liveUpdates = String(Number(document.documentElement.dataset.liveUpdates || 0) + 1);
        })
        .catch(() => {})
        .finally(() => {
          busy = false;
          if (again) {
            again = false;
            reload();
          }
        });
    };
    const source = new EventSource(live[0].dataset.liveJobs);
    source.addEventListener("jobs", reload);
  }
})();
