/* touchpath.js: a small first-party tracker speaking Segment's HTTP Tracking API.
 *
 *   <script>
 *     window.touchpath = window.touchpath || [];
 *     touchpath.push(["load", {writeKey: "wk_…", host: "https://collect.example.com"}]);
 *   </script>
 *   <script async src="https://collect.example.com/v1/touchpath.js"></script>
 *
 * Calls made before the script loads (touchpath.push(["track", "Signed Up", {...}])) are
 * replayed once it has. Then: touchpath.page(), .track(event, props), .identify(userId,
 * traits), .flush(). A page view is sent on load unless {autoPage: false}.
 * Anonymous id: first-party cookie ajs_anonymous_id (shared with analytics.js and read by the
 * collector's email click redirect: serve the collector on a subdomain of the site and pass
 * {cookieDomain: "example.com"} so the cookie reaches it). Events are batched to /v1/batch; on page hide the queue
 * goes out with navigator.sendBeacon; failed sends (network, 429, 5xx) are kept in
 * localStorage and retried with exponential backoff.
 */
(function (w, d) {
  "use strict";
  var COOKIE = "ajs_anonymous_id", USER = "tp_user_id", RETRY = "tp_retry";
  var cfg = {writeKey: "", host: "", flushAt: 20, flushInterval: 1000, autoPage: true,
    cookieDomain: ""};
  var queue = [], timer = null, retryTimer = null, attempts = 0;

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === "x" ? r : (r & 3 | 8)).toString(16);
    });
  }
  function store(key, value) {
    try {
      if (value === undefined) return w.localStorage.getItem(key);
      if (value === null) w.localStorage.removeItem(key); else w.localStorage.setItem(key, value);
    } catch (e) { /* storage blocked: keep going without it */ }
    return null;
  }
  function readCookie(name) {
    var found = d.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    if (!found) return null;
    var value = decodeURIComponent(found[1]).replace(/^"|"$/g, "");
    return value || null;
  }
  function anonymousId() {
    var id = readCookie(COOKIE);
    if (!id) {
      id = uuid();
      d.cookie = COOKIE + "=" + encodeURIComponent(id) + "; path=/; max-age=31536000; SameSite=Lax" +
        (cfg.cookieDomain ? "; domain=" + cfg.cookieDomain : "") +
        (w.location.protocol === "https:" ? "; Secure" : "");
    }
    return id;
  }
  function campaign() {
    var found = {}, names = {utm_campaign: "name", utm_source: "source", utm_medium: "medium",
      utm_term: "term", utm_content: "content"};
    w.location.search.replace(/^\?/, "").split("&").forEach(function (pair) {
      var kv = pair.split("="), key = names[decodeURIComponent(kv[0] || "")];
      if (key && kv[1]) found[key] = decodeURIComponent(kv[1].replace(/\+/g, " "));
    });
    return found;
  }
  function page() {
    return {path: w.location.pathname, url: w.location.href, referrer: d.referrer,
      title: d.title, search: w.location.search};
  }
  function event(type, extra) {
    var e = {type: type, messageId: uuid(), anonymousId: anonymousId(),
      timestamp: new Date().toISOString(),
      context: {page: page(), userAgent: navigator.userAgent, locale: navigator.language,
        library: {name: "touchpath.js", version: "1.0.0"}}};
    var c = campaign(), user = store(USER);
    if (Object.keys(c).length) e.context.campaign = c;
    if (user) e.userId = user;
    for (var k in extra) if (extra[k] !== undefined) e[k] = extra[k];
    return e;
  }
  function enqueue(e) {
    queue.push(e);
    if (queue.length >= cfg.flushAt) flush();
    else if (!timer) timer = setTimeout(flush, cfg.flushInterval);
  }
  function body(batch) {
    return JSON.stringify({batch: batch, sentAt: new Date().toISOString(), writeKey: cfg.writeKey});
  }
  function keep(batch) {
    var kept = JSON.parse(store(RETRY) || "[]").concat(batch).slice(-500);
    store(RETRY, JSON.stringify(kept));
    if (!retryTimer) {
      retryTimer = setTimeout(retry, Math.min(30000, 1000 * Math.pow(2, attempts++)));
    }
  }
  function post(batch) {
    // text/plain keeps this a "simple" CORS request: no preflight, same as sendBeacon
    return fetch(cfg.host + "/v1/batch", {method: "POST", body: body(batch), keepalive: true,
      headers: {"Content-Type": "text/plain"}}).then(function (r) {
      if (r.status === 429 || r.status >= 500) keep(batch); else attempts = 0;
    }, function () { keep(batch); });
  }
  function flush(beacon) {
    clearTimeout(timer);
    timer = null;
    if (!queue.length || !cfg.writeKey) return;
    var batch = queue.splice(0, queue.length);
    if (beacon === true && navigator.sendBeacon &&
        navigator.sendBeacon(cfg.host + "/v1/batch", new Blob([body(batch)], {type: "text/plain"}))) {
      return;
    }
    post(batch);
  }
  function retry() {
    retryTimer = null;
    var batch = JSON.parse(store(RETRY) || "[]");
    store(RETRY, null);
    if (batch.length) post(batch);
  }
  var api = {
    load: function (options) {
      for (var k in options) cfg[k] = options[k];
      cfg.host = String(cfg.host || "").replace(/\/$/, "");
      anonymousId();
      if (cfg.autoPage) api.page();
      retry();
    },
    page: function (name, properties) {
      var props = page();
      for (var k in properties) props[k] = properties[k];
      enqueue(event("page", {name: name, properties: props}));
    },
    track: function (name, properties) {
      enqueue(event("track", {event: name, properties: properties || {}}));
    },
    identify: function (userId, traits) {
      if (userId) store(USER, String(userId));
      enqueue(event("identify", {userId: userId || undefined, traits: traits || {}}));
    },
    flush: flush,
    anonymousId: anonymousId,
    push: function (call) { api[call[0]].apply(api, call.slice(1)); }
  };
  var early = w.touchpath;
  w.touchpath = api;
  if (early && early.length) {
    for (var i = 0; i < early.length; i++) api.push(early[i]);
  }
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState === "hidden") flush(true);
  });
  w.addEventListener("pagehide", function () { flush(true); });
})(window, document);
