/// The web view's stylesheet and script, served as `/static/baton.css` and `/static/baton.js`: small, written by
/// hand, committed here, so the page needs nothing from elsewhere and no build step.
enum WebAssets {
    static let css = """
        :root { --ok: #2e7d32; --bad: #c62828; --busy: #1565c0; --muted: #757575; --dead: #ef6c00; --line: #ddd; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; background: #fafafa; }
        header { display: flex; gap: 16px; align-items: center; padding: 8px 20px; background: #263238; color: #fff; }
        header a { color: #fff; text-decoration: none; margin-right: 14px; }
        header .brand { font-weight: 700; font-size: 16px; }
        .live { color: #78909c; font-size: 12px; } .live.on { color: #66bb6a; }
        #flash { margin-left: auto; font-size: 13px; }
        main { padding: 12px 20px 40px; }
        h1 { font-size: 20px; margin: 8px 0 12px; } h2 { font-size: 16px; margin: 22px 0 8px; }
        table { border-collapse: collapse; background: #fff; margin-bottom: 8px; }
        th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
        th { font-weight: 600; background: #f1f3f4; }
        table.fields th { background: none; width: 9em; }
        pre { margin: 0; white-space: pre-wrap; word-break: break-word; font-size: 12px; }
        pre.log { background: #fff; border: 1px solid var(--line); padding: 8px; }
        .ok { color: var(--ok); } .bad, .error { color: var(--bad); } .busy { color: var(--busy); } .muted { color: var(--muted); }
        button { font: inherit; padding: 2px 10px; margin-right: 4px; border: 1px solid #90a4ae; background: #fff; border-radius: 3px; cursor: pointer; }
        button:hover { background: #eceff1; }
        .toolbar a, .toolbar b, .zoom a, .zoom b { margin-right: 8px; }
        .login label { display: block; margin-bottom: 8px; }
        svg#timeline { background: #fff; border: 1px solid var(--line); }
        svg text.axis { font-size: 11px; fill: #555; text-anchor: middle; }
        svg text.job { font-size: 12px; fill: #222; }
        svg line.grid { stroke: #eee; } svg line.lane { stroke: #f3f3f3; } svg line.now { stroke: #ab47bc; stroke-dasharray: 3 3; }
        svg line.slot { stroke: #90a4ae; } svg line.late { stroke: #ffb300; stroke-width: 2; }
        svg rect.algorithm { fill: var(--busy); } svg rect.processing { fill: var(--ok); }
        svg g.run.bad rect.bad, svg rect.bad { fill: var(--bad); } svg g.run[data-state=dead] rect.bad { fill: var(--dead); }
        svg rect.muted { fill: #bdbdbd; } svg rect.busy { fill: #90caf9; } svg circle.skipped { fill: var(--muted); }
        svg rect.stage { fill: #7e57c2; } svg rect.s1 { fill: #26a69a; } svg rect.s2 { fill: #8d6e63; } svg rect.s3 { fill: #ec407a; }
        svg rect.s4 { fill: #5c6bc0; } svg rect.s5 { fill: #9ccc65; }
        svg g.run:hover rect { opacity: .75; }
        .legend .key { display: inline-block; width: 14px; height: 8px; margin: 0 4px 0 12px; background: var(--busy); }
        .legend .key.processing { background: var(--ok); } .legend .key.stage { background: #7e57c2; }
        .legend .key.bad { background: var(--bad); } .legend .key.late { background: #ffb300; height: 3px; }
        """

    static let script = """
        "use strict";
        // Actions: a button with data-action posts it (with the header that says a page of this site sends it).
        document.addEventListener("click", async (event) => {
          const button = event.target.closest("button[data-action]");
          if (!button) return;
          const body = {};
          for (const key of ["job", "run", "stage"]) if (button.dataset[key] !== undefined) body[key] = button.dataset[key];
          const flash = document.getElementById("flash");
          button.disabled = true;
          try {
            const answer = await fetch("/api/" + button.dataset.action, {
              method: "POST", credentials: "same-origin",
              headers: { "Content-Type": "application/json", "X-Baton-Action": "1" }, body: JSON.stringify(body)
            });
            const reply = await answer.json().catch(() => ({}));
            flash.textContent = reply.ok ? (reply.message || "done") : ("refused: " + (reply.error || answer.status));
            flash.className = reply.ok ? "ok" : "bad";
            refreshSoon(300);
          } catch (error) {
            flash.textContent = "failed: " + error; flash.className = "bad";
          } finally { button.disabled = false; }
        });
        // Live updates: each run event the logger captures arrives over server-sent events; the page's content is
        // fetched again, at most once a second.
        let pending = null;
        function refreshSoon(delay) {
          if (pending) return;
          pending = setTimeout(async () => {
            pending = null;
            const answer = await fetch(location.href, { credentials: "same-origin" }).catch(() => null);
            if (!answer || !answer.ok) return;
            const page = new DOMParser().parseFromString(await answer.text(), "text/html");
            const main = page.querySelector("main");
            if (main) document.querySelector("main").replaceWith(main);
          }, delay);
        }
        if (document.body.dataset.live === "1" && window.EventSource) {
          const live = document.getElementById("live");
          const source = new EventSource("/events");
          source.onopen = () => live.classList.add("on");
          source.onerror = () => live.classList.remove("on");
          source.onmessage = () => refreshSoon(1000);
        }
        """
}
