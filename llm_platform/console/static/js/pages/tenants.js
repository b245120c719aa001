// Platform admins: every tenant; create one, rename, suspend and resume (with a confirmation), and go
// act on one (its users, keys, limits...).
import { api } from "../api.js";
import { ask, busy, empty, h, notice, pagedTable, when } from "../ui.js";

export async function render(main, ctx) {
  const messages = h("div", {});
  const listing = h("section", {});

  const update = async (button, tenant, body, done) => {
    await busy(button, messages, async () => {
      await api(`/admin/tenants/${encodeURIComponent(tenant.slug)}`, { method: "PATCH", json: body });
      messages.replaceChildren(notice(done));
      draw(await api("/admin/tenants"));
      await ctx.reloadTenants(); // the switcher's list
    });
  };

  const draw = (tenants) => {
    if (tenants.length === 0) {
      listing.replaceChildren(empty("No tenants yet: create the first one above, then add its admin."));
      return;
    }
    listing.replaceChildren(pagedTable([
      { label: "Slug", cell: (t) => h("a", { href: `#/t/${encodeURIComponent(t.slug)}/users` }, t.slug) },
      { label: "Name", cell: (t) => t.name },
      { label: "Status", cell: (t) => t.status },
      { label: "Created", cell: (t) => when(t.created_at) },
      {
        label: "",
        cell: (t) => h("div", { class: "row-actions" },
          h("button", {
            class: "secondary outline",
            onClick: async (event) => {
              const button = event.target;
              const name = await ask(`A new name for ${t.slug}:`, { confirm: "Rename", input: { value: t.name, label: "Name", maxlength: 200 } });
              if (name === null || name.trim() === "" || name === t.name) return;
              await update(button, t, { name: name.trim() }, `${t.slug} renamed to ${name.trim()}.`);
            },
          }, "Rename"),
          t.status === "active"
            ? h("button", {
                class: "secondary",
                onClick: async (event) => {
                  const button = event.target;
                  if (!(await ask(`Suspend ${t.slug}? Its users and API keys are refused until it is resumed.`, { confirm: "Suspend", danger: true }))) return;
                  await update(button, t, { status: "suspended" }, `${t.slug} suspended.`);
                },
              }, "Suspend")
            : h("button", {
                onClick: async (event) => {
                  const button = event.target;
                  if (!(await ask(`Resume ${t.slug}? Its users and API keys work again.`, { confirm: "Resume" }))) return;
                  await update(button, t, { status: "active" }, `${t.slug} resumed.`);
                },
              }, "Resume")),
      },
    ], tenants));
  };

  const slug = h("input", { name: "slug", required: true, maxlength: 63, placeholder: "acme" });
  const name = h("input", { name: "name", maxlength: 200, placeholder: "Acme Corp" });
  const create = h("button", { type: "submit" }, "Create tenant");
  const form = h("form", {
    class: "inline-form",
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(create, messages, async () => {
        const tenant = await api("/admin/tenants", { method: "POST", json: { slug: slug.value.trim(), name: name.value.trim() || null } });
        form.reset();
        messages.replaceChildren(notice(`Tenant ${tenant.slug} created. `),
          h("p", {}, h("a", { href: `#/t/${encodeURIComponent(tenant.slug)}/users` }, `Add its first admin →`)));
        draw(await api("/admin/tenants"));
        await ctx.reloadTenants();
      });
    },
  }, h("label", {}, "Slug", slug), h("label", {}, "Name", name), create);

  draw(await api("/admin/tenants")); // the API's refusal, for anyone but a platform admin
  main.replaceChildren(h("h2", {}, "Tenants"), h("article", {}, h("header", {}, "New tenant"), form), messages, listing);
}
