// The API key: kept in sessionStorage (this tab only, gone when it
// closes), asked for in a labelled dialog when the server refuses a request.

const storageKey = 'k2.apiKey';

export function apiKey(): string | null {
  try {
    return sessionStorage.getItem(storageKey);
  } catch {
    return null; // storage disabled: ask each time
  }
}

function setKey(key: string): void {
  try {
    sessionStorage.setItem(storageKey, key);
  } catch {
    /* storage disabled */
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(storageKey);
  } catch {
    /* storage disabled */
  }
}

let pending: Promise<boolean> | null = null;

// askKey shows the dialog saying why (no key, or the key was refused) and
// resolves true once a key is entered, false when the user cancels. Every
// request refused meanwhile waits on the same dialog.
export function askKey(status: 401 | 403): Promise<boolean> {
  if (pending) return pending;
  pending = new Promise<boolean>((resolve) => {
    const dialog = document.getElementById('key-dialog') as HTMLDialogElement;
    const form = dialog.querySelector('form') as HTMLFormElement;
    const input = dialog.querySelector('input') as HTMLInputElement;
    const reason = dialog.querySelector('.reason') as HTMLElement;
    reason.textContent = status === 401
      ? 'This K2 server needs an API key to answer.'
      : 'The server refused that API key (403 FORBIDDEN). Enter another.';
    input.value = '';
    const done = (ok: boolean) => {
      form.removeEventListener('submit', onSubmit);
      dialog.removeEventListener('cancel', onCancel);
      dialog.close();
      pending = null;
      resolve(ok);
    };
    const onSubmit = (e: Event) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      setKey(key);
      done(true);
    };
    const onCancel = () => done(false);
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('cancel', onCancel);
    (dialog.querySelector('button[value=cancel]') as HTMLButtonElement).onclick = (e) => {
      e.preventDefault();
      done(false);
    };
    dialog.showModal();
    input.focus();
  });
  return pending;
}
