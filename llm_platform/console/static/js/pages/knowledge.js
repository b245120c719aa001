// A tenant's knowledge base: search it (every member), and for its admins upload documents (with the
// upload's progress, then its ingestion status polled until ready or failed), list and delete documents
// and collections. The API decides who may write; members are shown only what they may use.
import { api, upload } from "../api.js";
import { ask, busy, empty, errorBox, h, notice, when } from "../ui.js";

const PAGE = 20;
const POLL_MS = 700;
const STATUSES = ["queued", "indexing", "ready", "failed"];
const MODES = [["hybrid", "Hybrid (meaning + words)"], ["dense", "Dense (meaning)"], ["lexical", "Lexical (words)"]];

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function render(main, ctx) {
  const base = `/${encodeURIComponent(ctx.tenant)}/kb`;
  const admin = ctx.me.role !== "member";
  const messages = h("div", {});
  let collections = await api(`${base}/collections`);

  // --- collections ---------------------------------------------------------------------------------
  const collectionList = h("div", {});
  const collectionPickers = [];
  const pickCollection = (props, anyLabel) => {
    const select = h("select", props);
    const fill = () => {
      const current = select.value;
      select.replaceChildren(
        ...(anyLabel ? [h("option", { value: "" }, anyLabel)] : []),
        ...collections.map((c) => h("option", { value: c.name, selected: c.name === current }, c.name)));
    };
    collectionPickers.push(fill);
    fill();
    return select;
  };
  const reloadCollections = async () => {
    collections = await api(`${base}/collections`);
    drawCollections();
    collectionPickers.forEach((fill) => fill());
  };
  const drawCollections = () => {
    collectionList.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "striped", id: "collections" },
      h("thead", {}, h("tr", {}, ["Collection", "Documents", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, collections.map((c) => h("tr", { "data-collection": c.name },
        h("td", {}, c.name), h("td", {}, String(c.documents)), h("td", {}, when(c.created_at)),
        h("td", {}, admin ? h("button", {
          class: "secondary outline",
          "aria-label": `Delete collection ${c.name}`,
          onClick: async (event) => {
            const button = event.target;
            const documents = c.documents === 1 ? "its document" : `its ${c.documents} documents`;
            if (!(await ask(`Delete the collection ${c.name}, ${documents} and their vectors? This cannot be undone.`, { confirm: "Delete", danger: true }))) return;
            await busy(button, messages, async () => {
              await api(`${base}/collections/${encodeURIComponent(c.name)}`, { method: "DELETE" });
              messages.replaceChildren(notice(`Collection ${c.name} deleted.`));
              await reloadCollections();
              await loadDocuments(null, null);
            });
          },
        }, "Delete") : null)))))));
  };

  const newName = h("input", { name: "collection-name", required: true, maxlength: 64, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", placeholder: "manuals" });
  const createCollection = h("button", { type: "submit" }, "Create collection");
  const collectionForm = h("form", {
    class: "inline-form",
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(createCollection, messages, async () => {
        const made = await api(`${base}/collections`, { method: "POST", json: { name: newName.value.trim() } });
        collectionForm.reset();
        messages.replaceChildren(notice(`Collection ${made.name} created.`));
        await reloadCollections();
      });
    },
  }, h("label", {}, "New collection", newName), createCollection);

  // --- documents -----------------------------------------------------------------------------------
  const filterCollection = pickCollection({ name: "filter-collection", "aria-label": "Collection filter" }, "All collections");
  const filterStatus = h("select", { name: "filter-status", "aria-label": "Status filter" },
    h("option", { value: "" }, "Any status"), STATUSES.map((s) => h("option", { value: s }, s)));
  const rows = h("tbody", {});
  const documentsEmpty = h("div", {});
  const listErrors = h("div", {}); // apart from `messages`, so a reload keeps what an action just said
  const older = h("button", { class: "secondary", hidden: true }, "Older documents");
  let cursor = null;

  const documentRow = (d) => h("tr", { "data-document": d.id, "data-status": d.status },
    h("td", {}, d.title), h("td", {}, d.collection),
    h("td", {}, h("span", { class: `status ${d.status}` }, d.status)),
    h("td", {}, String(d.chunks)), h("td", {}, size(d.bytes)), h("td", {}, when(d.created_at)),
    h("td", { class: "error-text" }, d.error || ""),
    h("td", {}, admin ? h("button", {
      class: "secondary outline",
      "aria-label": `Delete ${d.title}`,
      onClick: async (event) => {
        const button = event.target;
        if (!(await ask(`Delete "${d.title}" and its passages? Answers stop citing it at once.`, { confirm: "Delete", danger: true }))) return;
        await busy(button, messages, async () => {
          await api(`${base}/documents/${encodeURIComponent(d.id)}`, { method: "DELETE" });
          messages.replaceChildren(notice(`"${d.title}" deleted.`));
          await loadDocuments(null, null);
          await reloadCollections();
        });
      },
    }, "Delete") : null));

  let loads = 0;
  const loadDocuments = async (button, next) => {
    const mine = ++loads;
    await busy(button, listErrors, async () => {
      const page = await api(`${base}/documents`, {
        query: { collection: filterCollection.value, status: filterStatus.value, limit: PAGE, cursor: next },
      });
      if (mine !== loads) return; // a later load (other filters) is under way: its rows are the ones to show
      if (!next) rows.replaceChildren();
      rows.append(...page.data.map(documentRow));
      cursor = page.next_cursor;
      older.hidden = !cursor;
      documentsEmpty.replaceChildren(!next && page.data.length === 0
        ? empty(filterCollection.value || filterStatus.value
          ? "No documents match these filters."
          : admin ? "No documents yet: upload one above (.txt, .md, .html or .pdf)." : "No documents yet: a tenant admin can upload some.")
        : "");
    });
  };
  older.addEventListener("click", () => loadDocuments(older, cursor));
  filterCollection.addEventListener("change", () => loadDocuments(null, null));
  filterStatus.addEventListener("change", () => loadDocuments(null, null));

  // --- upload --------------------------------------------------------------------------------------
  const file = h("input", { name: "file", type: "file", required: true, accept: ".txt,.md,.markdown,.html,.htm,.pdf" });
  const title = h("input", { name: "title", maxlength: 300, placeholder: "the file's name" });
  const uploadCollection = pickCollection({ name: "upload-collection" });
  const progress = h("progress", { id: "upload-progress", value: 0, max: 100, hidden: true });
  const uploadStatus = h("div", { id: "upload-status", "aria-live": "polite" });
  const send = h("button", { type: "submit" }, "Upload");

  // Ingestion runs in the background: the document's status, asked again until it is done with, on a
  // line of its own (uploading another file meanwhile is fine).
  const follow = async (id, name, line) => {
    for (;;) {
      const doc = await api(`${base}/documents/${encodeURIComponent(id)}`);
      if (doc.status === "ready") {
        line.replaceChildren(notice(`"${name}" is ready: ${doc.chunks} passage${doc.chunks === 1 ? "" : "s"} indexed.`));
        return;
      }
      if (doc.status === "failed") {
        line.replaceChildren(errorBox(new Error(`"${name}" failed: ${doc.error}`)));
        return;
      }
      line.replaceChildren(h("p", { "aria-busy": "true" }, `"${name}": ${doc.status}…`));
      await sleep(POLL_MS);
      if (!main.isConnected) return; // the user went on to another page
    }
  };

  const uploadForm = h("form", {
    onSubmit: async (event) => {
      event.preventDefault();
      const chosen = file.files[0];
      if (!chosen) return;
      const form = new FormData();
      form.append("file", chosen);
      if (title.value.trim()) form.append("title", title.value.trim());
      form.append("collection", uploadCollection.value);
      progress.hidden = false;
      progress.value = 0;
      const name = title.value.trim() || chosen.name;
      const line = h("div", { class: "upload-line" });
      uploadStatus.prepend(line);
      const accepted = await busy(send, line, async () => {
        const answer = await upload(`${base}/documents`, form, {
          onProgress: (sent, total) => {
            progress.value = total ? Math.round((sent / total) * 100) : 0;
            line.replaceChildren(h("p", { class: "muted" }, `Uploading "${name}": ${progress.value}%`));
          },
        });
        progress.value = 100;
        uploadForm.reset();
        return answer;
      });
      if (!accepted) return;
      await loadDocuments(null, null);
      try {
        await follow(accepted.id, name, line);
      } catch (error) {
        line.replaceChildren(errorBox(error));
      }
      if (!main.isConnected) return;
      await loadDocuments(null, null);
      await reloadCollections();
    },
  },
  h("div", { class: "inline-form" },
    h("label", {}, "File", file), h("label", {}, "Title", title), h("label", {}, "Collection", uploadCollection)),
  send, progress, uploadStatus);

  // --- search --------------------------------------------------------------------------------------
  const query = h("input", { name: "query", type: "search", required: true, maxlength: 2000, placeholder: "What are you looking for?" });
  const mode = h("select", { name: "mode" }, MODES.map(([value, label]) => h("option", { value }, label)));
  const topK = h("input", { name: "top_k", type: "number", min: 1, max: 100, value: 4 });
  const found = h("div", { id: "search-results" });
  const searchButton = h("button", { type: "submit" }, "Search");
  const searchForm = h("form", {
    class: "inline-form",
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(searchButton, found, async () => {
        const results = await api(`${base}/search`, { method: "POST", json: { query: query.value.trim(), mode: mode.value, top_k: Number(topK.value) || 4 } });
        found.replaceChildren(results.data.length === 0
          ? empty("No passage matches: try other words, or another mode.")
          : h("ol", { class: "passages" }, results.data.map((p) => h("li", {},
            h("p", {}, h("strong", {}, p.title), h("span", { class: "muted" }, ` · ${p.collection} · passage ${p.chunk_index + 1} · score ${p.score.toFixed(3)}`)),
            h("blockquote", { class: "passage" }, p.text)))));
      });
    },
  }, h("label", { class: "grow" }, "Search", query), h("label", {}, "Mode", mode), h("label", {}, "Passages", topK), searchButton);

  drawCollections();
  await loadDocuments(null, null);
  main.replaceChildren(
    h("h2", {}, `Knowledge base of ${ctx.tenant}`),
    h("p", { class: "muted" }, "Documents the playground (and the API's knowledge_base option) can ground answers in."),
    h("article", {}, h("header", {}, "Search"), searchForm, found),
    admin ? h("article", {}, h("header", {}, "Add a document"), uploadForm) : null,
    messages,
    h("section", {}, h("h3", {}, "Documents"),
      h("div", { class: "inline-form" }, h("label", {}, "Collection", filterCollection), h("label", {}, "Status", filterStatus)),
      h("div", { class: "table-wrap" }, h("table", { class: "striped", id: "documents" },
        h("thead", {}, h("tr", {}, ["Title", "Collection", "Status", "Passages", "Size", "Added", "Error", ""].map((c) => h("th", { scope: "col" }, c)))),
        rows)),
      listErrors, documentsEmpty, older),
    h("section", {}, h("h3", {}, "Collections"), admin ? collectionForm : null, collectionList));
}
