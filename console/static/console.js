// homeport console: live refresh of [data-live] parts and of job pages. No framework,
// nothing from the internet; without this script every page still works (reload by hand).
"use strict";

const refreshMs = Number(document.body.dataset.refreshMs || 2000);

async function refreshLive(el) {
  const open = new Set(
    [...el.querySelectorAll("details[open] > summary")].map((s) => s.textContent),
  );
  try {
    const response = await fetch(el.dataset.live, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    el.innerHTML = await response.text();
    for (const s of el.querySelectorAll("details > summary")) {
      if (open.has(s.textContent)) s.parentElement.open = true;
    }
    el.dataset.refreshed = String(Date.now());
  } catch (err) {
    // The console itself is unreachable: keep what is shown, try again next tick.
  }
}

function followJob(el) {
  const state = document.getElementById("job-state");
  const steps = document.getElementById("job-steps");
  const outcome = document.getElementById("job-outcome");
  const tick = async () => {
    try {
      const response = await fetch(el.dataset.job);
      if (response.ok) {
        const job = await response.json();
        state.textContent = job.state;
        while (steps.children.length < job.steps.length) {
          const li = document.createElement("li");
          li.textContent = job.steps[steps.children.length];
          steps.appendChild(li);
        }
        outcome.textContent = job.outcome;
        if (job.state !== "running") return;
      }
    } catch (err) {
      // try again below
    }
    setTimeout(tick, 250);
  };
  tick();
}

for (const el of document.querySelectorAll("[data-live]")) {
  setInterval(() => refreshLive(el), refreshMs);
}
for (const el of document.querySelectorAll("[data-job]")) {
  followJob(el);
}
