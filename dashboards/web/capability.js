export async function mountCapability(root) { root.textContent = "todo"; }
