// A form generated from a JSON Schema, for the IVR editor's node settings (any plugin's node
// declares its params as a JSON Schema, so a third-party node gets its form with no script).
//
//   const form = schemaForm(schema, value, { add, remove, key, choose });
//   panel.append(form.element);
//   form.element.addEventListener("input", () => save(form.read()));
//   form.showErrors([{ path: "options/1", message: "..." }]);
//
// Supported: string (enum, format date/time/uri), integer, number, boolean, arrays (a checkbox
// set for unique enum items or unique integers of a small range, else a list of items of any
// supported kind), objects with properties, and maps (additionalProperties, keys checked
// against propertyNames.pattern), nested as deep as the schema goes; secrets (writeOnly) as
// password fields; anything else is edited as JSON text. Labels come from the schema's title
// (already in the user's language), else the property name. Every value is set through DOM
// properties, never as markup. Paths are params-relative ("options/1").

let uniqueId = 0;
const MAX_INTEGER_CHOICES = 31;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function kindOf(schema) {
  if (Array.isArray(schema.enum)) return "enum";
  if (Array.isArray(schema.oneOf) && schema.oneOf.every((option) => "const" in option)) {
    return "enum";
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const type = types.find((candidate) => candidate && candidate !== "null");
  if (type) return type;
  if (schema.properties || schema.additionalProperties) return "object";
  return "json";
}

function choicesOf(schema) {
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => [value, String(value)]);
  return schema.oneOf.map((option) => [option.const, option.title ?? String(option.const)]);
}

/** The values a checkbox set offers for unique items: an enum, or a few integers (days...). */
function setChoices(items) {
  if (kindOf(items) === "enum") return choicesOf(items);
  const { minimum: low, maximum: high } = items;
  if (kindOf(items) !== "integer" || low === undefined || high === undefined) return null;
  if (high - low > MAX_INTEGER_CHOICES) return null;
  return Array.from({ length: high - low + 1 }, (_, i) => [low + i, String(low + i)]);
}

function initial(schema) {
  if (schema.default !== undefined) return structuredClone(schema.default);
  const kind = kindOf(schema);
  if (kind === "object") return {};
  if (kind === "array") return [];
  return undefined;
}

function titleOf(schema, name) {
  if (schema.title) return schema.title;
  return name === "" ? "" : String(name).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

class SchemaForm {
  constructor(strings) {
    this.strings = strings;
    this.slots = new Map(); // path -> { small, input }
  }

  errorSlot(path, input) {
    const small = el("small", { className: "schema-error", "data-error-for": path });
    small.id = `schema-error-${++uniqueId}`;
    if (input) input.setAttribute("aria-describedby", small.id);
    this.slots.set(path, { small, input });
    return small;
  }

  /** A labelled control for `schema` at `path`: { element, read() -> value | undefined }. */
  field(schema, value, path, name, required) {
    const kind = kindOf(schema);
    const label = titleOf(schema, name);
    const hint = schema.description ? el("small", { textContent: schema.description }) : null;
    if (kind === "object") return this.objectField(schema, value ?? {}, path, label, hint);
    if (kind === "array") return this.arrayField(schema, value ?? [], path, label, hint);
    if (kind === "boolean") {
      const input = el("input", { type: "checkbox", name: path, checked: Boolean(value) });
      input.setAttribute("role", "switch");
      const element = el("div", { className: "schema-field" },
        el("label", {}, input, el("span", { textContent: ` ${label}` })), hint,
        this.errorSlot(path, input));
      return { element, read: () => input.checked };
    }
    const input = kind === "enum"
      ? this.select(schema, value, required)
      : this.input(kind, schema, value);
    input.name = path;
    if (required) input.required = true;
    const element = el("div", { className: "schema-field" },
      el("label", {}, el("span", { textContent: label }), input), hint,
      this.errorSlot(path, input));
    return { element, read: () => this.readInput(kind, input, required) };
  }

  select(schema, value, required) {
    const choices = choicesOf(schema);
    const select = el("select");
    if (!required || value === undefined) {
      select.append(el("option", { value: "", textContent: this.strings.choose }));
    }
    choices.forEach(([choice, text], index) => {
      select.append(el("option", { value: String(index), textContent: text,
        selected: JSON.stringify(choice) === JSON.stringify(value) }));
    });
    select.choices = choices.map(([choice]) => choice);
    return select;
  }

  input(kind, schema, value) {
    const input = el("input");
    if (kind === "integer" || kind === "number") {
      input.type = "number";
      input.step = kind === "integer" ? "1" : "any";
      for (const [bound, attr] of [["minimum", "min"], ["maximum", "max"]]) {
        if (schema[bound] !== undefined) input[attr] = String(schema[bound]);
      }
    } else if (kind === "string") {
      // A secret (writeOnly) arrives as the server's mask; typing replaces it.
      input.type = schema.writeOnly
        ? "password"
        : { date: "date", time: "time", uri: "url" }[schema.format] || "text";
      if (schema.writeOnly) input.autocomplete = "new-password";
      if (schema.maxLength !== undefined) input.maxLength = schema.maxLength;
    } else {
      input.type = "text";
      input.dataset.json = "true";
    }
    if (value !== undefined && value !== null) {
      input.value = kind === "json" ? JSON.stringify(value) : String(value);
    }
    return input;
  }

  readInput(kind, input, required) {
    if (kind === "enum") return input.value === "" ? undefined : input.choices[Number(input.value)];
    const text = input.value;
    if (text.trim() === "") return required && kind === "string" ? "" : undefined;
    if (kind === "integer" || kind === "number") return Number(text);
    if (kind === "json") {
      try {
        return JSON.parse(text);
      } catch {
        return text; // the server names what is wrong with it
      }
    }
    return text;
  }

  objectField(schema, value, path, label, hint) {
    const box = path === "" ? el("div", { className: "schema-object" })
      : el("fieldset", { className: "schema-object" }, el("legend", { textContent: label }));
    if (hint) box.append(hint);
    const required = new Set(schema.required || []);
    const children = [];
    for (const [name, child] of Object.entries(schema.properties || {})) {
      const childPath = path === "" ? name : `${path}/${name}`;
      const control = this.field(child, value[name], childPath, name, required.has(name));
      children.push([name, control]);
      box.append(control.element);
    }
    let map = null;
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
      const known = new Set(Object.keys(schema.properties || {}));
      const extra = Object.fromEntries(Object.entries(value).filter(([k]) => !known.has(k)));
      map = this.mapEditor(schema, extra, path);
      box.append(map.element);
    }
    box.append(this.errorSlot(path));
    const read = () => {
      const result = {};
      for (const [name, control] of children) {
        const item = control.read();
        if (item !== undefined) result[name] = item;
      }
      return map ? { ...result, ...map.read() } : result;
    };
    return { element: box, read };
  }

  mapEditor(schema, value, path) {
    const valueSchema = schema.writeOnly
      ? { ...schema.additionalProperties, writeOnly: true }
      : schema.additionalProperties;
    const pattern = schema.propertyNames?.pattern;
    const rows = el("div", { className: "schema-map" });
    const entries = [];
    const addRow = (key, itemValue) => {
      const keyInput = el("input", { type: "text", value: key, className: "schema-key" });
      keyInput.setAttribute("aria-label", this.strings.key);
      if (pattern) keyInput.pattern = pattern.replace(/^\^/, "").replace(/\$$/, "");
      const entry = { keyInput, control: null, row: null };
      const rowPath = () => (path === "" ? keyInput.value : `${path}/${keyInput.value}`);
      entry.control = this.field(valueSchema, itemValue, rowPath(), "", true);
      const remove = el("button", { type: "button", className: "secondary outline",
        textContent: this.strings.remove });
      entry.row = el("div", { className: "schema-map-row", "data-key": key },
        el("label", {}, el("span", { textContent: this.strings.key }), keyInput),
        entry.control.element, remove);
      remove.addEventListener("click", () => {
        entries.splice(entries.indexOf(entry), 1);
        entry.row.remove();
        rows.dispatchEvent(new Event("input", { bubbles: true }));
      });
      entries.push(entry);
      rows.append(entry.row);
      return entry;
    };
    for (const [key, itemValue] of Object.entries(value)) addRow(key, itemValue);
    const add = el("button", { type: "button", className: "outline",
      textContent: this.strings.add });
    add.addEventListener("click", () => {
      addRow("", initial(valueSchema)).keyInput.focus();
      rows.dispatchEvent(new Event("input", { bubbles: true }));
    });
    const element = el("div", {}, rows, add);
    const read = () => {
      const result = {};
      for (const { keyInput, control } of entries) {
        const item = control.read();
        if (keyInput.value !== "" && item !== undefined) result[keyInput.value] = item;
      }
      return result;
    };
    return { element, read };
  }

  arrayField(schema, value, path, label, hint) {
    const items = schema.items || {};
    const box = el("fieldset", { className: "schema-array" },
      el("legend", { textContent: label }), hint);
    const choices = schema.uniqueItems ? setChoices(items) : null;
    if (choices) {
      const boxes = choices.map(([choice, text]) => {
        const input = el("input", { type: "checkbox", name: path,
          checked: value.some((item) => JSON.stringify(item) === JSON.stringify(choice)) });
        input.choice = choice;
        box.append(el("label", { className: "schema-choice" }, input,
          el("span", { textContent: ` ${text}` })));
        return input;
      });
      box.append(this.errorSlot(path));
      return { element: box, read: () => boxes.filter((b) => b.checked).map((b) => b.choice) };
    }
    const list = el("div", { className: "schema-list" });
    const controls = [];
    const addItem = (itemValue) => {
      const index = controls.length;
      const control = this.field(items, itemValue, `${path}/${index}`, `${index + 1}`, true);
      const remove = el("button", { type: "button", className: "secondary outline",
        textContent: this.strings.remove });
      const row = el("div", { className: "schema-list-row" }, control.element, remove);
      remove.addEventListener("click", () => {
        controls.splice(controls.indexOf(control), 1);
        row.remove();
        list.dispatchEvent(new Event("input", { bubbles: true }));
      });
      controls.push(control);
      list.append(row);
      return row;
    };
    for (const itemValue of value) addItem(itemValue);
    const add = el("button", { type: "button", className: "outline",
      textContent: this.strings.add });
    add.addEventListener("click", () => {
      addItem(initial(items)).querySelector("input, select")?.focus();
      list.dispatchEvent(new Event("input", { bubbles: true }));
    });
    box.append(list, add, this.errorSlot(path));
    const read = () => controls.map((c) => c.read()).filter((item) => item !== undefined);
    return { element: box, read };
  }

  clearErrors() {
    for (const { small, input } of this.slots.values()) {
      small.textContent = "";
      input?.removeAttribute("aria-invalid");
    }
  }

  /** Put each { path, message } next to its field (or its closest enclosing one). */
  showErrors(errors) {
    this.clearErrors();
    for (const { path, message } of errors) {
      let at = path;
      while (!this.slots.has(at) && at !== "") at = at.includes("/") ? at.replace(/\/[^/]*$/, "") : "";
      const slot = this.slots.get(at);
      if (!slot) continue;
      slot.small.textContent = [slot.small.textContent, message].filter(Boolean).join(" ");
      slot.input?.setAttribute("aria-invalid", "true");
    }
  }
}

/** The form of `schema` (an object schema) filled with `value`: { element, read, showErrors }. */
export function schemaForm(schema, value, strings) {
  const form = new SchemaForm(strings);
  const root = form.field(schema, value ?? initial(schema) ?? {}, "", "", true);
  return {
    element: root.element,
    read: root.read,
    showErrors: (errors) => form.showErrors(errors),
    clearErrors: () => form.clearErrors(),
  };
}

/** The default params of a new node of `schema`: each property's default, recursively. */
export function defaults(schema) {
  const value = initial(schema) ?? {};
  if (kindOf(schema) !== "object") return value;
  for (const [name, child] of Object.entries(schema.properties || {})) {
    if (value[name] === undefined && child.default !== undefined) {
      value[name] = structuredClone(child.default);
    }
  }
  return value;
}
