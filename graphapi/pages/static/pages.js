// groundtruth's investigation pages: the only script. It shows every <time datetime> and the
// window form's from/to in the browser's time zone and states that zone; without it, times stay
// in UTC, stated as such.
"use strict";
(function () {
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  for (const el of document.querySelectorAll("time[datetime]")) {
    const utc = el.getAttribute("datetime");
    const d = new Date(utc);
    if (Number.isNaN(d.getTime())) continue;
    el.title = utc;
    el.textContent =
      `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
      `.${pad(d.getMilliseconds(), 3)}`;
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const offset = `UTC${sign}${pad(Math.floor(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
  for (const el of document.querySelectorAll(".tz")) el.textContent = `${zone} (${offset})`;

  // The window form's from/to: the server takes UTC (or epoch ms). Shown and typed here in the
  // browser's zone (datetime-local), sent as UTC: the text field becomes hidden and is filled
  // from the local one on submit.
  const local = (d) =>
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  for (const form of document.querySelectorAll("form.window")) {
    const pairs = [];
    for (const utcField of form.querySelectorAll("input[name=from], input[name=to]")) {
      const given = utcField.value.trim();
      const d = new Date(/^\d+$/.test(given) ? Number(given) : given);
      const field = document.createElement("input");
      field.type = "datetime-local";
      field.step = "0.001";
      field.className = `local-${utcField.name}`;
      if (given && !Number.isNaN(d.getTime())) field.value = local(d);
      utcField.type = "hidden";
      utcField.after(field);
      pairs.push([field, utcField]);
    }
    form.addEventListener("submit", () => {
      for (const [field, utcField] of pairs) {
        const d = new Date(field.value); // no offset: the browser's zone
        utcField.value = field.value && !Number.isNaN(d.getTime()) ? d.toISOString() : "";
      }
    });
    for (const el of form.querySelectorAll(".window-zone")) el.textContent = `in ${zone} (${offset})`;
  }
})();
