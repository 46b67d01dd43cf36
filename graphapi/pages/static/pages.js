// groundtruth's investigation pages: the only script. It shows every <time datetime> in the
// browser's time zone and states that zone; without it, times stay in UTC, stated as such.
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
})();
