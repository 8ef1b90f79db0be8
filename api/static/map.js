// touchpath journey map: funnel, drop-off, channel/stage flows, trigger firings, customer and
// account look-ups, from the read API; a date range, a persona and first-touch filters.
"use strict";
(function () {
  const $ = (selector) => document.querySelector(selector);
  const COLORS = ["#3b5bdb", "#f08c00", "#2f9e44", "#c2255c", "#7048e8", "#1098ad", "#e8590c",
    "#5c940d", "#862e9c", "#d6336c", "#495057"];
  const colorOf = {};
  const channelColor = (name) => colorOf[name] || (colorOf[name] = COLORS[Object.keys(colorOf).length % COLORS.length]);
  const triggerColorOf = {};
  const TRIGGER_COLORS = ["#c2255c", "#1098ad", "#f08c00", "#5c940d", "#7048e8", "#495057"];
  const triggerColor = (name) => triggerColorOf[name] ||
    (triggerColorOf[name] = TRIGGER_COLORS[Object.keys(triggerColorOf).length % TRIGGER_COLORS.length]);
  let token = "", personas = {}, dropOff = null;

  function element(tag, attrs, ...children) {
    const node = tag === "svg" || attrs && attrs.svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "svg") continue;
      if (key === "text") node.textContent = value;
      else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }
  const svg = (tag, attrs) => element(tag, {...attrs, svg: true});

  async function api(path) {
    const answer = await fetch(path, {headers: {Authorization: "Bearer " + token}});
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.detail || answer.statusText);
    return body;
  }
  function status(text, isError) {
    $("#status").textContent = text;
    $("#status").className = isError ? "error" : "";
  }
  // A duration in its largest unit, rounded to the power of ten just coarser than the
  // funnel's histogram buckets (0.5 % wide, so a reading is within 0.25 %): 41,412 s shows
  // "11.5 h" (never "12 h"), 3,594 s "1 h" (never "59.9 min").
  const UNITS = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    for (let i = 0; i < UNITS.length; i++) {
      const [size, unit] = UNITS[i];
      if (seconds < size && i < UNITS.length - 1) continue;
      const shown = toPrecision(seconds / size);
      if (i > 0 && shown * size >= UNITS[i - 1][0]) return duration(shown * size);
      return String(shown) + " " + unit;
    }
  }
  function toPrecision(value) {
    if (value <= 0) return 0;
    const k = Math.ceil(Math.log10(value * 0.005));
    if (k >= 0) return Math.round(value / 10 ** k) * 10 ** k;
    return Number((Math.round(value * 10 ** -k) / 10 ** -k).toFixed(-k));
  }
  const secondsTitle = (seconds) => seconds === null || seconds === undefined ? "" :
    `${seconds.toLocaleString("en")} s (within 0.25 %)`;
  const percent = (share) => share === null || share === undefined ? "—" : (100 * share).toFixed(1) + "%";

  // --- what is counted: date range, persona, first touch --------------------------------
  function range() {
    const query = new URLSearchParams();
    if ($("#since").value) query.set("since", $("#since").value + "T00:00:00Z");
    if ($("#until").value) query.set("until", $("#until").value + "T23:59:59.999Z");
    return query;
  }
  function persona(query) {
    const trait = $("#persona-trait").value, value = $("#persona-value").value;
    if (trait && value) query.set("trait." + trait, value);
    return query;
  }
  function filters() {
    const query = persona(range());
    if ($("#channel").value) query.set("channel", $("#channel").value);
    if ($("#campaign").value) query.set("campaign", $("#campaign").value);
    return query.toString();
  }
  function offer(select, choices, keepLabel) {
    const current = select.value;
    const options = choices.map(([value, customers]) =>
      element("option", {value, text: `${value} (${customers})`, "data-customers": customers,
        title: `${customers} customers in the date range`}));
    select.replaceChildren(element("option", {value: "", text: keepLabel}), ...options);
    select.value = choices.some(([value]) => value === current) ? current : "";
  }

  async function loadPersonas() {
    const answer = await api("/v1/personas?" + range());
    personas = Object.fromEntries(answer.personas.filter((p) => p.values.length)
      .map((p) => [p.trait, p.values.map((v) => [v.value, v.customers])]));
    const select = $("#persona-trait"), current = select.value;
    select.replaceChildren(element("option", {value: "", text: "anyone"}),
      ...Object.keys(personas).map((trait) => element("option", {value: trait, text: trait})));
    select.value = personas[current] ? current : "";
    loadPersonaValues();
  }
  function loadPersonaValues() {
    const values = personas[$("#persona-trait").value];
    offer($("#persona-value"), values || [], "any value");
    $("#persona-value").disabled = !values;
  }

  async function loadFilters() {
    const query = persona(range());
    for (const [group, select] of [["channel", "#channel"], ["campaign", "#campaign"]]) {
      query.set("group_by", group);
      const answer = await api("/v1/funnel?" + query);
      offer($(select), (answer.groups || [])
        .filter((one) => one.customers > 0 && one.group !== "(none)" && one.group !== "(other)")
        .map((one) => [one.group, one.customers]), "all");
    }
  }

  async function loadFunnel(entered) {
    const answer = await api("/v1/funnel?" + filters());
    const top = Math.max(1, ...answer.stages.map((s) => s.reached));
    const rows = answer.stages.map((s) => element("tr", {"data-stage": s.stage},
      element("td", {text: s.stage}),
      element("td", {class: "num reached", text: String(s.reached),
        title: `${s.reached} customers reached ${s.stage} or a later stage in the date range`}),
      element("td", {class: "bars"}, element("div", {class: "fill", style: `width:${(100 * s.reached / top).toFixed(1)}%`})),
      element("td", {class: "num entered", text: String(entered[s.stage] || 0),
        title: `${entered[s.stage] || 0} customers entered ${s.stage} itself in the date range (the flow's inflow)`}),
      element("td", {class: "num conversion", text: s.next_stage ? percent(s.conversion_to_next) : "—",
        title: s.next_stage ? `${s.converted_to_next} of ${s.reached} reached ${s.next_stage} by the end of the range` : "the last stage"}),
      element("td", {class: "num median", text: duration(s.median_seconds_to_next), title: secondsTitle(s.median_seconds_to_next)}),
      element("td", {class: "num p90", text: duration(s.p90_seconds_to_next), title: secondsTitle(s.p90_seconds_to_next)}),
      element("td", {class: "num stalled", text: String(s.stalled),
        title: `${s.stalled} still at ${s.stage}, entered more than ${answer.stalled_after} ago`})));
    $("#funnel tbody").replaceChildren(...rows);
    $("#funnel").dataset.customers = answer.customers;
    $("#range-note").textContent = `Counting ${answer.since.slice(0, 10)} → ${answer.until.slice(0, 10)} (UTC): ` +
      `${answer.customers} customers reached a stage in this range.`;
  }

  async function loadFlows(stages) {
    const answer = await api("/v1/flows?" + filters());
    $("#flows tbody").replaceChildren(...answer.links.map((l) => element("tr", {},
      element("td", {text: l.source}), element("td", {text: l.target}),
      element("td", {text: l.channel}), element("td", {class: "num", text: String(l.customers),
        title: `${l.customers} customers moved from ${l.source} to ${l.target} via ${l.channel} in the date range`}))));
    drawSankey(answer.links, stages);
    const entered = {};
    for (const l of answer.links) entered[l.target] = (entered[l.target] || 0) + l.customers;
    return entered;
  }

  async function loadDropOff() {
    const answer = await api("/v1/drop-off?" + filters());
    dropOff = answer;
    $("#drop-off tbody").replaceChildren(...answer.stages.map((s) => element("tr", {"data-stage": s.stage},
      element("td", {text: s.stage}),
      element("td", {class: "num reached", text: String(s.reached)}),
      element("td", {class: "num continued", text: s.continued === null ? "—" : String(s.continued),
        title: s.next_stage ? `reached ${s.next_stage} by the end of the range` : "the last stage"}),
      element("td", {class: "num dropped", text: s.dropped === null ? "—" : String(s.dropped),
        title: s.dropped === null ? "the last stage has no next stage" : `${s.dropped} reached ${s.stage} and not ${s.next_stage}`}),
      element("td", {class: "num rate", text: percent(s.drop_rate)}))));
    drawDropSplit();
  }
  function drawDropSplit() {
    if (!dropOff) return;
    const split = $("#drop-split").value, stages = dropOff.stages.filter((s) => s.next_stage);
    $("#drop-split-table thead").replaceChildren(element("tr", {},
      element("th", {text: split === "by_channel" ? "First-touch channel" : "First-touch campaign"}),
      element("th", {class: "num", text: "Customers", title: "customers who reached a stage in the range"}),
      ...stages.map((s) => element("th", {class: "num", text: `dropped at ${s.stage}`,
        title: `reached ${s.stage} (or later) and not ${s.next_stage}`}))));
    const worst = Math.max(0.0001, ...dropOff[split].flatMap((g) => g.stages.map((s) => s.drop_rate || 0)));
    $("#drop-split-table tbody").replaceChildren(...dropOff[split].map((g) => element("tr", {"data-group": g.group},
      element("td", {text: g.group}), element("td", {class: "num", text: String(g.customers)}),
      ...g.stages.filter((s) => s.next_stage).map((s) => element("td", {
        class: "num cell", "data-stage": s.stage, "data-dropped": s.dropped,
        style: `background:rgba(201,42,42,${(0.35 * (s.drop_rate || 0) / worst).toFixed(3)})`,
        title: `${g.group}: ${s.dropped} of ${s.reached} who reached ${s.stage} did not reach ${s.next_stage}`,
        text: s.reached ? `${s.dropped} (${percent(s.drop_rate)})` : "—"})))));
  }

  async function loadFirings() {
    const answer = await api("/v1/triggers/firings?" + range());
    $("#firings tbody").replaceChildren(...answer.days.map((d) => element("tr", {"data-day": d.day, "data-trigger": d.trigger},
      element("td", {text: d.day}), element("td", {text: d.trigger}),
      element("td", {class: "num fired", text: String(d.fired)}),
      element("td", {class: "num cancelled", text: String(d.cancelled)}),
      element("td", {class: "num net", text: String(d.net)}))));
    const totals = answer.totals.map((t) => element("tr", {class: "total", "data-total": t.trigger},
      element("th", {text: "total"}), element("th", {text: t.trigger}),
      element("th", {class: "num fired", text: String(t.fired)}),
      element("th", {class: "num cancelled", text: String(t.cancelled)}),
      element("th", {class: "num net", text: String(t.net)})));
    $("#firings tbody").append(...totals);
    drawFirings(answer);
  }
  function drawFirings(answer) {
    const chart = $("#firings-chart");
    chart.replaceChildren();
    const width = chart.clientWidth || 1000, height = chart.clientHeight || 200, pad = 28;
    const days = answer.days.map((d) => d.day).sort();
    if (!days.length) {
      const empty = svg("text", {x: pad, y: height / 2});
      empty.textContent = "No firing due in this date range.";
      chart.append(empty);
      $("#firings-legend").replaceChildren();
      return;
    }
    const dayMs = 86400000, first = Date.parse(days[0]), last = Date.parse(days[days.length - 1]);
    const span = Math.round((last - first) / dayMs) + 1;
    const perDay = {};
    for (const d of answer.days) perDay[d.day] = (perDay[d.day] || 0) + d.fired;
    const top = Math.max(1, ...Object.values(perDay));
    const step = (width - 2 * pad) / span, bar = Math.max(1, step * 0.8);
    const used = {};
    for (const d of answer.days) {
      const x = pad + Math.round((Date.parse(d.day) - first) / dayMs) * step;
      const below = used[d.day] || 0, size = (height - 2 * pad) * d.fired / top;
      const rect = svg("rect", {class: "firing", x: x.toFixed(1), width: bar.toFixed(1),
        y: (height - pad - below - size).toFixed(1), height: size.toFixed(1), fill: triggerColor(d.trigger),
        "data-day": d.day, "data-trigger": d.trigger, "data-fired": d.fired});
      const tip = svg("title", {});
      tip.textContent = `${d.day} ${d.trigger}: ${d.fired} fired, ${d.cancelled} cancelled`;
      rect.append(tip);
      chart.append(rect);
      used[d.day] = below + size;
    }
    for (const [text, x, anchor] of [[days[0], pad, "start"], [days[days.length - 1], width - pad, "end"]]) {
      const label = svg("text", {x, y: height - 8, "text-anchor": anchor});
      label.textContent = text;
      chart.append(label);
    }
    const peak = svg("text", {x: pad, y: pad - 10});
    peak.textContent = `most in one day: ${top}`;
    chart.append(peak);
    $("#firings-legend").replaceChildren(...answer.triggers.map((t) =>
      element("li", {}, element("i", {style: `background:${triggerColor(t)}`}), t)));
  }

  function drawSankey(links, stages) {
    const chart = $("#sankey");
    chart.replaceChildren();
    const width = chart.clientWidth || 1000, height = chart.clientHeight || 420, pad = 24, nodeWidth = 12;
    const sources = [...new Set(links.map((l) => l.source).filter((s) => !stages.includes(s)))].sort();
    const columns = [sources, ...stages.map((s) => [s])];
    const through = {};
    for (const l of links) {
      through[l.target] = (through[l.target] || 0) + l.customers;
      if (!stages.includes(l.source)) through[l.source] = (through[l.source] || 0) + l.customers;
    }
    const total = Math.max(1, ...columns.map((c) => c.reduce((sum, n) => sum + (through[n] || 0), 0)));
    const scale = (height - pad * 2 - 8 * Math.max(0, sources.length - 1)) / total;
    const step = (width - 2 * pad - 120 - 130) / Math.max(1, columns.length - 1);
    const place = {};
    columns.forEach((nodes, index) => {
      let y = pad;
      for (const node of nodes) {
        const size = Math.max(2, (through[node] || 0) * scale);
        place[node] = {x: pad + 120 + index * step, y, size};
        y += size + 8;
      }
    });
    // Band offsets: leaving a node in the order of their targets, entering one in the order
    // of their sources, so bands do not cross more than they must.
    const drawable = links.filter((l) => place[l.source] && place[l.target]);
    const offsets = new Map();
    const stack = (key, order, end) => {
      const used = {};
      for (const l of [...drawable].sort(order)) {
        const node = l[key], start = used[node] ?? place[node].y;
        const thickness = Math.max(1, l.customers * scale);
        offsets.set(l, {...(offsets.get(l) || {}), [end]: start + thickness / 2, thickness});
        used[node] = start + thickness;
      }
    };
    const by = (key) => (a, b) => place[a[key]].y - place[b[key]].y || a.channel.localeCompare(b.channel);
    stack("source", by("target"), "y0");
    stack("target", by("source"), "y1");
    const used = new Set();
    for (const l of drawable) {
      const {y0, y1, thickness} = offsets.get(l);
      const x0 = place[l.source].x + nodeWidth, x1 = place[l.target].x, mid = (x0 + x1) / 2;
      const path = svg("path", {class: "link", d: `M${x0},${y0} C${mid},${y0} ${mid},${y1} ${x1},${y1}`,
        stroke: channelColor(l.channel), "stroke-width": thickness.toFixed(1),
        "data-source": l.source, "data-target": l.target, "data-channel": l.channel, "data-customers": l.customers});
      const tip = svg("title", {});
      tip.textContent = `${l.source} → ${l.target} via ${l.channel}: ${l.customers}`;
      path.append(tip);
      chart.append(path);
      used.add(l.channel);
    }
    for (const [name, p] of Object.entries(place)) {
      if (!through[name]) continue;
      chart.append(svg("rect", {class: "node", x: p.x, y: p.y, width: nodeWidth, height: p.size}));
      const label = svg("text", {x: stages.includes(name) ? p.x + nodeWidth + 4 : p.x - 4, y: p.y + p.size / 2 + 4,
        "text-anchor": stages.includes(name) ? "start" : "end"});
      label.textContent = `${name.replace("first touch: ", "")} (${through[name]})`;
      const explain = svg("title", {});
      explain.textContent = stages.includes(name)
        ? `${through[name]} customers entered ${name} in the date range`
        : `${through[name]} customers whose first touch was ${name.replace("first touch: ", "")} entered their first stage in the date range`;
      label.append(explain);
      label.setAttribute("data-node", name);
      label.setAttribute("data-customers", through[name]);
      chart.append(label);
    }
    $("#legend").replaceChildren(...[...used].sort().map((c) =>
      element("li", {}, element("i", {style: `background:${channelColor(c)}`}), c)));
  }

  async function lookUp(event) {
    event.preventDefault();
    const id = encodeURIComponent($("#identifier").value.trim()), type = $("#id-type").value;
    const box = $("#customer");
    try {
      const profile = await api(`/v1/customers/${id}?type=${type}`);
      const journey = await api(`/v1/customers/${id}/journey?type=${type}&limit=200`);
      box.replaceChildren(renderProfile(profile), renderTimeline(journey.entries, profile.stage_history));
    } catch (error) {
      box.replaceChildren(element("p", {class: "error", text: String(error.message || error)}));
    }
  }

  function renderProfile(profile) {
    const facts = element("dl", {},
      element("dt", {text: "Customer"}), element("dd", {id: "customer-id", text: profile.customer_id}),
      element("dt", {text: "Stage"}), element("dd", {}, element("span", {class: "stage", id: "customer-stage", text: profile.stage || "—"})),
      element("dt", {text: "First touch"}), element("dd", {text: profile.first_touch ? `${profile.first_touch.channel}${profile.first_touch.campaign ? " · " + profile.first_touch.campaign : ""}` : "—"}),
      element("dt", {text: "Events"}), element("dd", {text: String(profile.counts.events)}),
      element("dt", {text: "Revenue"}), element("dd", {text: String(profile.revenue)}));
    const identities = element("ul", {id: "identities"}, ...profile.identities.map((i) =>
      element("li", {"data-type": i.type, text: `${i.type}: ${i.value}`})));
    return element("div", {class: "card"}, facts, element("div", {}, element("h3", {text: "Identities"}), identities));
  }

  async function lookUpAccount(event) {
    event.preventDefault();
    const id = encodeURIComponent($("#group-id").value.trim());
    const box = $("#account");
    try {
      const account = await api(`/v1/accounts/${id}`);
      const members = await api(`/v1/accounts/${id}/members?limit=100`);
      box.replaceChildren(renderAccount(account, members.members));
    } catch (error) {
      box.replaceChildren(element("p", {class: "error", text: String(error.message || error)}));
    }
  }

  function renderAccount(account, members) {
    const facts = element("dl", {},
      element("dt", {text: "Account"}), element("dd", {id: "account-id", text: account.group_id}),
      element("dt", {text: "Stage"}), element("dd", {}, element("span", {class: "stage", id: "account-stage", text: account.stage || "—"})),
      element("dt", {text: "Since"}), element("dd", {text: account.entered_at ? account.entered_at.replace("T", " ").slice(0, 19) : "—"}),
      element("dt", {text: "Members"}), element("dd", {id: "account-size", text: String(account.members)}));
    const traits = element("ul", {id: "account-traits"}, ...Object.entries(account.traits).map(([name, value]) =>
      element("li", {"data-trait": name, text: `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`})));
    const people = element("ul", {id: "account-members"}, ...members.map((m) =>
      element("li", {"data-customer": m.customer_id},
        `${m.identities.length ? m.identities[0].value : m.customer_id} `,
        element("span", {class: "stage", text: m.stage || "—"}))));
    return element("div", {class: "card"}, facts,
      element("div", {}, element("h3", {text: "Traits"}), traits, element("h3", {text: "Members"}), people));
  }

  function renderTimeline(entries, history) {
    const entered = {};
    for (const h of history || []) entered[h.message_id] = (entered[h.message_id] || []).concat(h.stage);
    const items = entries.map((e) => {
      const stages = entered[e.id] || [];
      const item = element("li", {class: stages.length ? "stage-change" : "", "data-id": e.id},
        element("time", {text: e.at.replace("T", " ").slice(0, 19)}),
        element("span", {class: "chip", style: `background:${channelColor(e.channel)}`, text: e.channel}), " ",
        e.event || e.type + (e.properties && e.properties.path ? " " + e.properties.path : ""));
      for (const stage of stages) item.append(" ", element("span", {class: "stage", text: "→ " + stage}));
      return item;
    });
    return element("div", {}, element("h3", {text: "Timeline (newest first)"}), element("ol", {class: "timeline", id: "timeline"}, ...items));
  }

  async function start() {
    status("loading…");
    try {
      const stages = (await api("/v1/stages")).stages.map((s) => s.stage);
      let running = Promise.resolve();
      const counts = async () => {
        const entered = await loadFlows(stages);
        await loadFunnel(entered);
        await loadDropOff();
      };
      // one refresh at a time, in order: the page never shows an older answer over a newer one
      let pending = 0;
      const queue = (work) => {
        pending += 1;
        document.body.dataset.busy = "true";
        const done = running.then(work);
        running = done.then(() => status(""), (error) => status(String(error.message || error), true))
          .then(() => { pending -= 1; if (!pending) delete document.body.dataset.busy; });
        return done;
      };
      const rangeChanged = () => queue(async () => {
        await loadPersonas(); await loadFilters(); await counts(); await loadFirings();
      });
      const personaChanged = () => queue(async () => { await loadFilters(); await counts(); });
      $("#since").addEventListener("change", rangeChanged);
      $("#until").addEventListener("change", rangeChanged);
      for (const button of document.querySelectorAll(".preset")) {
        button.addEventListener("click", () => {
          const days = button.dataset.days;
          const today = new Date().toISOString().slice(0, 10);
          $("#until").value = days ? today : "";
          $("#since").value = days ? new Date(Date.now() - (Number(days) - 1) * 86400000).toISOString().slice(0, 10) : "";
          rangeChanged();
        });
      }
      $("#persona-trait").addEventListener("change", () => { loadPersonaValues(); personaChanged(); });
      $("#persona-value").addEventListener("change", personaChanged);
      $("#channel").addEventListener("change", () => queue(counts));
      $("#campaign").addEventListener("change", () => queue(counts));
      $("#drop-split").addEventListener("change", drawDropSplit);
      $("#lookup").addEventListener("submit", lookUp);
      $("#account-lookup").addEventListener("submit", lookUpAccount);
      $("#app").hidden = false;  // drawn visible, so the charts know their width
      await queue(async () => {
        await loadPersonas(); await loadFilters(); await counts(); await loadFirings();
      });
      $("#token-form").hidden = true;
      document.body.dataset.ready = "true";
    } catch (error) {
      $("#app").hidden = true;
      status(String(error.message || error), true);
      $("#token-form").hidden = false;
    }
  }

  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem("touchpath-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem("touchpath-token") || "";
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("#token").value;
    sessionStorage.setItem("touchpath-token", token);
    start();
  });
  if (token) start(); else $("#token-form").hidden = false;
})();
