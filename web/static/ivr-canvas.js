// The IVR editor's canvas: a flow graph drawn with drawflow (window.Drawflow, from npm through
// `make assets`). Drawflow knows nodes by number and outputs by position; this module keeps the
// graph's own ids and exit names beside them, so the editor reads and writes graph JSON:
//
//   {"entry": "menu_1", "nodes": [{"id", "type", "params", "position": {"x", "y"}, "label"?}],
//    "edges": [{"from", "exit", "to"}]}
//
// Each node has one input and one output per exit, in the order the node type gives them; an
// exit leads to at most one node (connecting it again replaces the old connection). Node text
// is set with textContent: labels and params are user data.

const INPUT = "input_1";

function outputClass(index) {
  return `output_${index + 1}`;
}

export class FlowCanvas extends EventTarget {
  /**
   * container: the element drawflow draws in; describe(type) -> {label, exitLabel(exit)};
   * strings: {start, unknownType}; readOnly: view mode (pan and zoom only).
   */
  constructor(container, { describe, strings, readOnly }) {
    super();
    this.describe = describe;
    this.strings = strings;
    this.nodes = new Map(); // drawflow id (string) -> {id, type, params, label, exits}
    this.entry = null;
    this.quiet = 0; // > 0 while this module rewires, so drawflow's events are not user edits
    this.editor = new window.Drawflow(container);
    this.editor.reroute = false;
    this.editor.zoom_min = 0.3;
    this.editor.editor_mode = readOnly ? "view" : "edit";
    this.editor.start();
    this.editor.on("connectionCreated", (c) => this.connected(c));
    this.editor.on("connectionRemoved", () => this.changed());
    this.editor.on("nodeRemoved", (dfId) => this.removed(dfId));
    this.editor.on("nodeMoved", () => this.changed());
    this.editor.on("nodeSelected", (dfId) => this.emit("select", this.nodes.get(String(dfId))));
    this.editor.on("nodeUnselected", () => this.emit("select", null));
    if (readOnly) {
      // Drawflow's view mode only pans: a click on a node still shows its settings.
      container.addEventListener("click", (event) => {
        const element = event.target.closest(".drawflow-node");
        const record = element && this.nodes.get(element.id.slice("node-".length));
        if (record) this.select(record);
      });
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  changed() {
    if (this.quiet === 0) this.emit("change");
  }

  quietly(work) {
    this.quiet += 1;
    try {
      return work();
    } finally {
      this.quiet -= 1;
    }
  }

  /** The graph id a new node of `type` gets: type_1, type_2... */
  freshId(type) {
    const taken = new Set([...this.nodes.values()].map((node) => node.id));
    let number = 1;
    while (taken.has(`${type}_${number}`)) number += 1;
    return `${type}_${number}`;
  }

  /** Canvas coordinates of a point of the page (a drop), whatever the pan and zoom. */
  canvasPoint(clientX, clientY) {
    const box = this.editor.precanvas.getBoundingClientRect();
    return { x: (clientX - box.x) / this.editor.zoom, y: (clientY - box.y) / this.editor.zoom };
  }

  /** The canvas point at the middle of what is visible, for nodes added without a drop. */
  visibleCentre() {
    const box = this.editor.container.getBoundingClientRect();
    const point = this.canvasPoint(box.x + box.width / 2, box.y + box.height / 3);
    const offset = (this.nodes.size % 5) * 24; // several in a row do not hide each other
    return { x: point.x - 80 + offset, y: point.y + offset };
  }

  /** Add a node ({id, type, params, label?, position}) with its exits; returns its record. */
  addNode(node, exits) {
    const { x, y } = node.position || { x: 40, y: 40 };
    const dfId = String(this.quietly(() =>
      this.editor.addNode(node.type, 1, exits.length, x, y, "ivr-node", {}, "")));
    const record = { id: node.id, type: node.type, params: node.params ?? {},
      label: node.label ?? "", exits: [...exits], dfId };
    this.nodes.set(dfId, record);
    this.element(record).dataset.testid = `ivr-node-${node.id}`;
    this.element(record).dataset.nodeId = node.id;
    this.render(record);
    if (this.entry === null) this.setEntry(record);
    this.changed();
    return record;
  }

  element(record) {
    return this.editor.container.querySelector(`#node-${record.dfId}`);
  }

  byId(id) {
    return [...this.nodes.values()].find((node) => node.id === id) ?? null;
  }

  /** Draw a node's text, entry badge and exit labels from its record. */
  render(record) {
    const element = this.element(record);
    const info = this.describe(record.type);
    const content = element.querySelector(".drawflow_content_node");
    const head = document.createElement("div");
    head.className = "ivr-node-head";
    const type = document.createElement("strong");
    type.textContent = info ? info.label : `${record.type} (${this.strings.unknownType})`;
    head.append(type);
    if (this.entry === record.id) {
      const badge = document.createElement("span");
      badge.className = "ivr-entry-badge";
      badge.textContent = this.strings.start;
      head.append(badge);
    }
    const name = document.createElement("div");
    name.className = "ivr-node-name";
    name.textContent = record.label || record.id;
    const problems = content.querySelector(".ivr-node-problems") || document.createElement("ul");
    problems.className = "ivr-node-problems";
    content.replaceChildren(head, name, problems);
    element.classList.toggle("ivr-entry", this.entry === record.id);
    element.style.minHeight = `${Math.max(64, record.exits.length * 26 + 12)}px`;
    element.querySelectorAll(".outputs .output").forEach((output, index) => {
      const exit = record.exits[index];
      const text = info ? info.exitLabel(exit) : exit;
      output.dataset.exit = exit;
      output.dataset.label = text;
      output.title = text;
    });
  }

  setEntry(record) {
    const previous = this.entry === null ? null : this.byId(this.entry);
    this.entry = record ? record.id : null;
    if (previous) this.render(previous);
    if (record) this.render(record);
    this.changed();
  }

  setLabel(record, label) {
    record.label = label;
    this.render(record);
    this.changed();
  }

  setParams(record, params) {
    record.params = params;
    this.changed();
  }

  /** Give a node these exits: connections of exits that remain follow them, others go. */
  setExits(record, exits) {
    if (JSON.stringify(exits) === JSON.stringify(record.exits)) return;
    const data = () => this.editor.getNodeFromId(record.dfId);
    const targets = new Map();
    this.quietly(() => {
      record.exits.forEach((exit, index) => {
        const output = outputClass(index);
        const connections = data().outputs[output]?.connections ?? [];
        targets.set(exit, connections.map((c) => c.node));
        for (const c of connections) {
          this.editor.removeSingleConnection(record.dfId, c.node, output, c.output);
        }
      });
      let count = record.exits.length;
      while (count > exits.length) this.editor.removeNodeOutput(record.dfId, outputClass(--count));
      while (count < exits.length) {
        this.editor.addNodeOutput(record.dfId);
        count += 1;
      }
      record.exits = [...exits];
      exits.forEach((exit, index) => {
        for (const target of targets.get(exit) ?? []) {
          this.editor.addConnection(record.dfId, target, outputClass(index), INPUT);
        }
      });
      this.render(record);
      this.editor.updateConnectionNodes(`node-${record.dfId}`);
    });
    this.changed();
  }

  /** Where exit `exit` of `record` leads (a record), or null. */
  target(record, exit) {
    const index = record.exits.indexOf(exit);
    if (index < 0) return null;
    const output = this.editor.getNodeFromId(record.dfId).outputs[outputClass(index)];
    const first = output?.connections[0];
    return first ? this.nodes.get(String(first.node)) ?? null : null;
  }

  /** Point exit `exit` of `record` at `target` (a record, or null to disconnect). */
  connect(record, exit, target) {
    const index = record.exits.indexOf(exit);
    if (index < 0) return;
    const output = outputClass(index);
    this.quietly(() => {
      for (const c of [...this.editor.getNodeFromId(record.dfId).outputs[output].connections]) {
        this.editor.removeSingleConnection(record.dfId, c.node, output, c.output);
      }
      if (target) this.editor.addConnection(record.dfId, target.dfId, output, INPUT);
    });
    this.changed();
  }

  connected({ output_id: from, input_id: to, output_class: output }) {
    if (this.quiet === 0) {
      // One exit leads to one node: the new connection replaces the exit's older one.
      const connections = this.editor.getNodeFromId(from).outputs[output].connections;
      this.quietly(() => {
        for (const c of connections.filter((c) => String(c.node) !== String(to))) {
          this.editor.removeSingleConnection(from, c.node, output, c.output);
        }
      });
    }
    this.changed();
  }

  removeNode(record) {
    this.editor.removeNodeId(`node-${record.dfId}`);
  }

  removed(dfId) {
    const record = this.nodes.get(String(dfId));
    this.nodes.delete(String(dfId));
    if (record && this.entry === record.id) this.entry = null;
    this.emit("removed", record);
    this.changed();
  }

  clear() {
    this.quietly(() => this.editor.clear());
    this.nodes.clear();
    this.entry = null;
  }

  /** Draw `graph`; exitsOf(node) gives each node's exits. Replaces what was drawn. */
  load(graph, exitsOf) {
    this.clear();
    this.quietly(() => {
      this.entry = graph.entry ?? null;
      for (const node of graph.nodes) this.addNode(node, exitsOf(node));
      for (const edge of graph.edges) {
        const from = this.byId(edge.from);
        const to = this.byId(edge.to);
        const index = from ? from.exits.indexOf(edge.exit) : -1;
        if (to && index >= 0) {
          this.editor.addConnection(from.dfId, to.dfId, outputClass(index), INPUT);
        }
      }
      this.entry = graph.entry ?? null;
      for (const record of this.nodes.values()) this.render(record);
    });
  }

  /** The graph JSON of what is drawn. */
  graph() {
    const nodes = [];
    const edges = [];
    for (const record of this.nodes.values()) {
      const data = this.editor.getNodeFromId(record.dfId);
      const node = { id: record.id, type: record.type, params: record.params,
        position: { x: Math.round(data.pos_x), y: Math.round(data.pos_y) } };
      if (record.label) node.label = record.label;
      nodes.push(node);
      record.exits.forEach((exit, index) => {
        for (const c of data.outputs[outputClass(index)]?.connections ?? []) {
          const target = this.nodes.get(String(c.node));
          if (target) edges.push({ from: record.id, exit, to: target.id });
        }
      });
    }
    return { entry: this.entry, nodes, edges };
  }

  zoom(direction) {
    if (direction > 0) this.editor.zoom_in();
    else if (direction < 0) this.editor.zoom_out();
    else this.editor.zoom_reset();
  }

  /** Mark nodes with problems: a class, and their messages inside the node. */
  showProblems(problems) {
    for (const record of this.nodes.values()) {
      const element = this.element(record);
      const mine = problems.filter((problem) => problem.node === record.id);
      element.classList.toggle("ivr-problem", mine.length > 0);
      const list = element.querySelector(".ivr-node-problems");
      list.replaceChildren(...mine.map((problem) => {
        const item = document.createElement("li");
        item.textContent = problem.message;
        return item;
      }));
      element.querySelectorAll(".outputs .output").forEach((output) => {
        const field = `exits/${output.dataset.exit}`;
        output.classList.toggle("ivr-problem-exit", mine.some((p) => p.field === field));
      });
    }
  }

  /** Highlight the nodes and connections a test call went through (path: [{node, exit}]). */
  showPath(path) {
    const container = this.editor.container;
    for (const marked of container.querySelectorAll(".ivr-path")) {
      marked.classList.remove("ivr-path");
    }
    for (const marked of container.querySelectorAll("[data-step]")) delete marked.dataset.step;
    path.forEach((step, position) => {
      const record = this.byId(step.node);
      if (!record) return;
      const element = this.element(record);
      element.classList.add("ivr-path");
      element.dataset.step = [element.dataset.step, position + 1].filter(Boolean).join(", ");
      const next = path[position + 1] && this.byId(path[position + 1].node);
      const index = record.exits.indexOf(step.exit);
      if (next && index >= 0) {
        const selector = `.connection.node_out_node-${record.dfId}.node_in_node-${next.dfId}` +
          `.${outputClass(index)}`;
        container.querySelector(selector)?.classList.add("ivr-path");
      }
    });
  }

  /** Bring a node into the middle of the view, and select it. */
  focus(record) {
    const element = this.element(record);
    const box = this.editor.container.getBoundingClientRect();
    const node = element.getBoundingClientRect();
    this.editor.canvas_x += box.x + box.width / 2 - (node.x + node.width / 2);
    this.editor.canvas_y += box.y + box.height / 2 - (node.y + node.height / 2);
    const { canvas_x: x, canvas_y: y, zoom } = this.editor;
    this.editor.precanvas.style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
    this.select(record);
  }

  /** Select a node as a click on it would. */
  select(record) {
    const element = this.element(record);
    this.editor.node_selected?.classList.remove("selected");
    this.editor.node_selected = element;
    element.classList.add("selected");
    this.emit("select", record);
  }
}
