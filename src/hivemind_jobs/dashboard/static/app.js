// The dashboard's only script: the throughput chart and small conveniences. Pages read and act
// without it; htmx (loaded before) refreshes the live parts in place.
(function () {
  "use strict";

  function drawChart(holder, range) {
    var source = holder.getAttribute("data-src");
    var join = source.indexOf("?") >= 0 ? "&" : "?";
    fetch(source + join + "range=" + encodeURIComponent(range), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        holder.textContent = "";
        var width = Math.max(320, holder.clientWidth || 800);
        var options = {
          width: width,
          height: 220,
          series: [
            {},
            { label: "succeeded", stroke: "#1a7f37", fill: "rgba(26,127,55,0.12)" },
            { label: "failed", stroke: "#c4320a", fill: "rgba(196,50,10,0.12)" }
          ],
          axes: [{}, { label: "jobs per " + (data.bucket_seconds >= 900 ? "15 min" : "minute") }]
        };
        holder.chart = new window.uPlot(options, [data.times, data.succeeded, data.failed], holder);
        holder.setAttribute("data-points", String(data.times.length));
      })
      .catch(function () { holder.textContent = "The chart could not be loaded."; });
  }

  function setUpChart() {
    var holder = document.getElementById("throughput");
    if (!holder || !window.uPlot) { return; }
    var range = "hour";
    drawChart(holder, range);
    document.querySelectorAll("[data-range]").forEach(function (button) {
      button.addEventListener("click", function () {
        document.querySelectorAll("[data-range]").forEach(function (other) { other.classList.remove("on"); });
        button.classList.add("on");
        range = button.getAttribute("data-range");
        drawChart(holder, range);
      });
    });
    setInterval(function () { if (!document.hidden) { drawChart(holder, range); } }, 30000);
  }

  function setUpAutosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpChart();
    setUpAutosubmit();
  });
})();
