/**
 * Electron adapter: native notifications. The service decides whether to notify and what the text says
 * (it honours the privacy setting); this only shows it and brings the window back on click.
 */
import { Notification } from 'electron';

export interface NotificationText {
  readonly title: string;
  readonly body: string;
}

export interface Notifier {
  show(text: NotificationText): void;
  /** Closes every notification still shown. */
  close(): void;
}

/** A notifier whose notifications call `onClick` (show the window) when clicked. */
export function createNotifier(onClick: () => void): Notifier {
  // Shown notifications are kept referenced: a garbage-collected Notification loses its click handler.
  const shown = new Set<Notification>();
  return {
    show(text) {
      if (!Notification.isSupported()) return;
      const notification = new Notification({ title: text.title, body: text.body });
      shown.add(notification);
      const forget = (): void => {
        shown.delete(notification);
      };
      notification.on('click', () => {
        forget();
        onClick();
      });
      notification.on('close', forget);
      notification.on('failed', forget);
      notification.show();
    },
    close() {
      for (const notification of shown) notification.close();
      shown.clear();
    },
  };
}
