// Light and dark: the system's preference unless the toggle chose one
// (kept in localStorage). Charts draw on canvas, so they read the colours
// from the CSS variables and are told when the theme changes.

export type Theme = 'light' | 'dark';

const storageKey = 'k2.theme';
const listeners: Array<() => void> = [];
const media = matchMedia('(prefers-color-scheme: dark)');
let chosen: Theme | null = stored();

function stored(): Theme | null {
  try {
    const c = localStorage.getItem(storageKey);
    return c === 'light' || c === 'dark' ? c : null;
  } catch {
    return null; // storage disabled: the toggle lasts until reload
  }
}

export function theme(): Theme {
  return chosen ?? (media.matches ? 'dark' : 'light');
}

export function onThemeChange(fn: () => void): void {
  listeners.push(fn);
}

// cssVar resolves a colour variable to rgb(): the variables hold
// light-dark() pairs, which canvas drawing does not understand, so a hidden
// probe element's computed colour resolves them for the current scheme.
let probe: HTMLElement | null = null;
export function cssVar(name: string): string {
  if (!probe) {
    probe = document.createElement('span');
    probe.hidden = true;
    document.body.append(probe);
  }
  probe.style.color = `var(${name})`;
  return getComputedStyle(probe).color;
}

function apply(button: HTMLButtonElement): void {
  const t = theme();
  document.documentElement.dataset.theme = t;
  button.setAttribute('aria-label', `Switch to ${t === 'dark' ? 'light' : 'dark'} theme`);
  button.textContent = t === 'dark' ? '☀' : '☾';
  for (const fn of listeners) fn();
}

export function initTheme(button: HTMLButtonElement): void {
  apply(button);
  media.addEventListener('change', () => apply(button));
  button.addEventListener('click', () => {
    chosen = theme() === 'dark' ? 'light' : 'dark';
    try {
      localStorage.setItem(storageKey, chosen);
    } catch {
      /* storage disabled */
    }
    apply(button);
  });
}
