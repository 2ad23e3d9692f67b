export async function mountLimits(root) { root.textContent = "todo"; }
