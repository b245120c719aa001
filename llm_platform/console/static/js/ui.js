// DOM helpers. Text from the API or a model only ever becomes text nodes (never innerHTML): nothing a
// tenant, a user or a model writes can turn into markup here.

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "text") {
      element.textContent = value;
    } else if (name === "class") {
      element.className = value;
    } else if (name in element && typeof value !== "string") {
      element[name] = value; // properties: checked, disabled, value as non-strings
    } else {
      element.setAttribute(name, value === true ? "" : value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

export function notice(text) {
  return h("p", { class: "notice", role: "status" }, text);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

// Runs an action for a button or form: busy while it runs, and its error shown in `where`.
export async function busy(button, where, action) {
  where.replaceChildren();
  if (button) button.setAttribute("aria-busy", "true");
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    where.replaceChildren(errorBox(error));
    return undefined;
  } finally {
    if (button) button.removeAttribute("aria-busy");
    if (button) button.disabled = false;
  }
}

// A modal question; answers true when confirmed. With `input`, answers that input's value (or null).
export function ask(message, { confirm = "Confirm", danger = false, input = null } = {}) {
  return new Promise((resolve) => {
    const field = input ? h("input", { ...input, "aria-label": input.label || "value" }) : null;
    const dialog = h("dialog", {});
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const yes = h("button", { class: danger ? "danger" : "", onClick: () => close(field ? field.value : true) }, confirm);
    if (danger) yes.classList.add("contrast");
    dialog.append(
      h("article", {},
        h("p", {}, message),
        field,
        h("footer", {},
          h("button", { class: "secondary", onClick: () => close(field ? null : false) }, "Cancel"),
          " ",
          yes,
        ),
      ),
    );
    dialog.addEventListener("cancel", () => close(field ? null : false));
    document.body.append(dialog);
    dialog.showModal();
    (field || yes).focus();
  });
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

// A table of rows, `pageSize` at a time, with Previous/Next: long lists page.
export function pagedTable(columns, rows, { pageSize = 20, caption = null } = {}) {
  const wrap = h("div", {});
  let page = 0;
  const pages = Math.max(1, Math.ceil(rows.length / pageSize));
  const draw = () => {
    const shown = rows.slice(page * pageSize, (page + 1) * pageSize);
    const table = h("table", { class: "striped" },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h("tbody", {}, shown.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row)))))),
    );
    const pager = pages > 1
      ? h("div", { class: "pager" },
          h("button", { class: "secondary", disabled: page === 0, onClick: () => { page -= 1; draw(); } }, "Previous"),
          h("span", {}, `Page ${page + 1} of ${pages} (${rows.length})`),
          h("button", { class: "secondary", disabled: page >= pages - 1, onClick: () => { page += 1; draw(); } }, "Next"),
        )
      : null;
    wrap.replaceChildren(...[h("div", { class: "table-wrap" }, table), pager].filter(Boolean));
  };
  draw();
  return wrap;
}

export function field(label, props) {
  return h("label", {}, label, h(props.tag || "input", { ...props, tag: undefined }));
}
