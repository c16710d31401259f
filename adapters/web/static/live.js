// Live timeline: new entries arrive by server-sent events and are added as text (never HTML).
(function () {
  "use strict";
  var list = document.getElementById("timeline");
  if (!list || !window.EventSource) { return; }
  var marker = document.getElementById("timeline-end");
  var source = new EventSource(list.getAttribute("data-stream"));
  source.addEventListener("open", function () { if (marker) { marker.hidden = false; } });
  source.addEventListener("entry", function (event) {
    var e = JSON.parse(event.data);
    if (document.getElementById("entry-" + e.id)) { return; }
    var item = document.createElement("li");
    item.id = "entry-" + e.id;
    item.className = "entry kind-" + e.kind + (e.key_event ? " key" : "");
    var time = document.createElement("time");
    time.setAttribute("datetime", e.occurred_at);
    time.textContent = e.shown_at;
    item.appendChild(time);
    item.appendChild(document.createTextNode(" "));
    if (e.key_event) {
      var mark = document.createElement("span");
      mark.className = "mark";
      mark.textContent = "★ key event";
      item.appendChild(mark);
      item.appendChild(document.createTextNode(" "));
    }
    var author = document.createElement("span");
    author.className = "author";
    author.textContent = e.author;
    item.appendChild(author);
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = e.text;
    item.appendChild(text);
    list.appendChild(item);
  });
})();
