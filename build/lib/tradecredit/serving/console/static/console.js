// Draws the buyer page's Plotly figures and runs the what-if panel (no other script on the pages).
(function () {
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var fig = JSON.parse(document.getElementById(el.dataset.figure).textContent);
    Plotly.newPlot(el, fig.data, fig.layout, {displaylogo: false, responsive: true}).then(function () {
      el.dataset.rendered = "true";
    });
  });
  var form = document.getElementById("what-if");
  if (!form) return;
  var money = function (v) { return v === null ? "–" : Math.round(v).toLocaleString("en-US"); };
  var pct = function (v) { return v === null ? "–" : (v * 100).toFixed(2) + "%"; };
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {
      buyer_id: form.dataset.buyer,
      order: {amount: Number(form.elements.amount.value), terms_days: Number(form.elements.terms_days.value)},
    };
    var result = document.getElementById("what-if-result"), error = document.getElementById("what-if-error");
    fetch(form.dataset.url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf},
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (answer) {
      if (!answer.ok) {
        error.textContent = answer.data.error.message;
        error.hidden = false;
        result.hidden = true;
        return;
      }
      error.hidden = true;
      result.querySelectorAll("[data-key]").forEach(function (cell) {
        var value = answer.data[cell.dataset.key];
        cell.textContent = cell.dataset.format === "money" ? money(value) : cell.dataset.format === "pct" ? pct(value) : value;
      });
      result.hidden = false;
      result.dataset.version = String(Number(result.dataset.version || 0) + 1);
    });
  });
})();
