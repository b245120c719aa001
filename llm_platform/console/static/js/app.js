// The console's shell: the session, the navigation for the signed-in role, and the routes, read from
// the URL's fragment (#/t/acme/keys), so the server only ever serves these static files.
import { api, refresh, signedIn, signOut } from "./api.js";
import { errorBox, h } from "./ui.js";
import * as audit from "./pages/audit.js";
import * as chat from "./pages/chat.js";
import * as keys from "./pages/keys.js";
import * as knowledge from "./pages/knowledge.js";
import * as login from "./pages/login.js";
import * as models from "./pages/models.js";
import * as settings from "./pages/settings.js";
import * as tenants from "./pages/tenants.js";
import * as usage from "./pages/usage.js";
import * as users from "./pages/users.js";

// Pages of a tenant, in the navigation's order; `admin`: shown to its admins (the API decides anyway).
const TENANT_PAGES = [
  { path: "chat", label: "Playground", page: chat, admin: false },
  { path: "knowledge", label: "Knowledge base", page: knowledge, admin: false },
  { path: "usage", label: "Usage", page: usage, admin: false },
  { path: "keys", label: "API keys", page: keys, admin: true },
  { path: "users", label: "Users", page: users, admin: true },
  { path: "audit", label: "Audit log", page: audit, admin: true },
  { path: "settings", label: "Limits & settings", page: settings, admin: true },
];
const PLATFORM_PAGES = [
  { path: "tenants", label: "Tenants", page: tenants },
  { path: "models", label: "Models", page: models },
  { path: "audit", label: "Platform audit", page: audit },
];

const session = { me: null, tenants: [] };
const main = document.getElementById("page");
const nav = document.getElementById("nav");

function isPlatformAdmin() {
  return session.me && session.me.role === "platform_admin";
}

function parseRoute() {
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "t" && parts[1]) return { scope: "tenant", tenant: parts[1], path: parts[2] || "chat" };
  if (parts[0] === "admin") return { scope: "platform", tenant: null, path: parts[1] || "tenants" };
  if (parts[0] === "login") return { scope: "login" };
  return { scope: "home" };
}

export function go(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function home() {
  if (!session.me) return "#/login";
  if (isPlatformAdmin()) return "#/admin/tenants";
  return `#/t/${encodeURIComponent(session.me.tenant)}/chat`;
}

async function loadTenants() {
  session.tenants = isPlatformAdmin() ? await api("/admin/tenants") : [];
}

function drawNav(route) {
  const links = [];
  const link = (href, label, current) =>
    h("li", {}, h("a", { href, "aria-current": current ? "page" : null }, label));
  if (isPlatformAdmin()) {
    for (const p of PLATFORM_PAGES) {
      links.push(link(`#/admin/${p.path}`, p.label, route.scope === "platform" && route.path === p.path));
    }
    const current = route.scope === "tenant" ? route.tenant : "";
    const switcher = h("select", {
      "aria-label": "Tenant",
      name: "tenant-switcher",
      onChange: (event) => {
        if (event.target.value) go(`#/t/${encodeURIComponent(event.target.value)}/${route.scope === "tenant" ? route.path : "keys"}`);
      },
    },
    h("option", { value: "" }, "Act on a tenant…"),
    session.tenants.map((t) => h("option", { value: t.slug, selected: t.slug === current }, `${t.name} (${t.slug})`)));
    links.push(h("li", {}, switcher));
  }
  const tenant = route.scope === "tenant" ? route.tenant : session.me.tenant;
  if (tenant) {
    const admin = isPlatformAdmin() || session.me.role === "tenant_admin";
    for (const p of TENANT_PAGES) {
      if (p.admin && !admin) continue;
      const here = route.scope === "tenant" && route.path === p.path;
      links.push(link(`#/t/${encodeURIComponent(tenant)}/${p.path}`, p.label, here));
    }
  }
  links.push(h("li", { class: "muted" }, session.me.email || ""));
  links.push(h("li", {}, h("button", { class: "secondary outline", id: "sign-out", onClick: leave }, "Sign out")));
  nav.replaceChildren(...links);
}

async function leave() {
  await signOut();
  session.me = null;
  go("#/login");
}

const context = {
  go,
  get me() {
    return session.me;
  },
  get tenants() {
    return session.tenants;
  },
  reloadTenants: async () => {
    await loadTenants();
    drawNav(parseRoute());
  },
  signedIn: async () => {
    session.me = await api("/auth/me");
    await loadTenants();
    go(home());
  },
};

let rendering = 0;

async function render() {
  rendering += 1; // any page still loading is now stale
  const route = parseRoute();
  if (route.scope === "login" || !session.me) {
    nav.replaceChildren();
    if (route.scope !== "login") {
      window.location.hash = "#/login";
      return;
    }
    main.replaceChildren();
    login.render(main, context);
    return;
  }
  if (route.scope === "home") {
    go(home());
    return;
  }
  drawNav(route);
  const pages = route.scope === "platform" ? PLATFORM_PAGES : TENANT_PAGES;
  const found = pages.find((p) => p.path === route.path);
  main.replaceChildren(h("p", { "aria-busy": "true" }, "Loading…"));
  if (!found) {
    main.replaceChildren(errorBox(new Error(`No page "${route.path}" here`)));
    return;
  }
  document.title = `${found.label} · llm-platform console`;
  // Each page is built apart and shown only if no later navigation started meanwhile: a slow page
  // (its API calls) must not replace the one the user went on to.
  const mine = ++rendering;
  const page = h("div", {});
  try {
    await found.page.render(page, Object.assign(Object.create(context), { tenant: route.tenant, scope: route.scope }));
  } catch (error) {
    page.replaceChildren(h("h2", {}, found.label), errorBox(error));
  }
  if (mine === rendering) main.replaceChildren(page);
}

window.addEventListener("hashchange", render);
window.addEventListener("llmp:session-ended", () => {
  session.me = null;
  login.sessionEnded();
  go("#/login");
});

// A reload keeps the session: the refresh cookie gets a new access token, or the login page shows.
(async () => {
  if (!signedIn() && (await refresh())) {
    try {
      session.me = await api("/auth/me");
      await loadTenants();
      if (parseRoute().scope === "login") window.location.hash = home();
    } catch {
      session.me = null;
    }
  }
  render();
})();
