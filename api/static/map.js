// touchpath journey map: funnel, channel/stage flows and customer look-up, from the read API.
"use strict";
(function () {
  const $ = (selector) => document.querySelector(selector);
  const COLORS = ["#3b5bdb", "#f08c00", "#2f9e44", "#c2255c", "#7048e8", "#1098ad", "#e8590c",
    "#5c940d", "#862e9c", "#d6336c", "#495057"];
  const colorOf = {};
  const channelColor = (name) => colorOf[name] || (colorOf[name] = COLORS[Object.keys(colorOf).length % COLORS.length]);
  let token = "";

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
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
    for (const [size, unit] of units) if (seconds >= size) return (seconds / size).toFixed(seconds >= 10 * size ? 0 : 1) + " " + unit;
    return seconds.toFixed(1) + " s";
  }
  const percent = (share) => share === null || share === undefined ? "—" : (100 * share).toFixed(1) + "%";
  function filters() {
    const query = new URLSearchParams();
    if ($("#channel").value) query.set("channel", $("#channel").value);
    if ($("#campaign").value) query.set("campaign", $("#campaign").value);
    return query.toString();
  }

  async function loadFilters() {
    for (const [group, select] of [["channel", "#channel"], ["campaign", "#campaign"]]) {
      const answer = await api("/v1/funnel?group_by=" + group);
      for (const one of answer.groups || []) {
        if (one.group === "(none)" || one.group === "(other)") continue;
        $(select).append(element("option", {value: one.group, text: `${one.group} (${one.customers})`}));
      }
    }
  }

  async function loadFunnel() {
    const answer = await api("/v1/funnel?" + filters());
    const top = Math.max(1, ...answer.stages.map((s) => s.reached));
    const rows = answer.stages.map((s) => element("tr", {"data-stage": s.stage},
      element("td", {text: s.stage}),
      element("td", {class: "num reached", text: String(s.reached)}),
      element("td", {class: "bars"}, element("div", {class: "fill", style: `width:${(100 * s.reached / top).toFixed(1)}%`})),
      element("td", {class: "num conversion", text: s.next_stage ? percent(s.conversion_to_next) : "—"}),
      element("td", {class: "num median", text: duration(s.median_seconds_to_next)}),
      element("td", {class: "num p90", text: duration(s.p90_seconds_to_next)}),
      element("td", {class: "num stalled", text: String(s.stalled)})));
    $("#funnel tbody").replaceChildren(...rows);
    $("#funnel").dataset.customers = answer.customers;
  }

  async function loadFlows(stages) {
    const answer = await api("/v1/flows?" + filters());
    $("#flows tbody").replaceChildren(...answer.links.map((l) => element("tr", {},
      element("td", {text: l.source}), element("td", {text: l.target}),
      element("td", {text: l.channel}), element("td", {class: "num", text: String(l.customers)}))));
    drawSankey(answer.links, stages);
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
      await loadFilters();
      const refresh = async () => { await loadFunnel(); await loadFlows(stages); };
      $("#channel").addEventListener("change", refresh);
      $("#campaign").addEventListener("change", refresh);
      $("#lookup").addEventListener("submit", lookUp);
      $("#account-lookup").addEventListener("submit", lookUpAccount);
      await refresh();
      $("#app").hidden = false;
      $("#token-form").hidden = true;
      status("");
      document.body.dataset.ready = "true";
    } catch (error) {
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
