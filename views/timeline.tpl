%# A page of messages. Expects: title, kind ("home", "public" or "user"),
%# messages, older, avatar_url, format_date; profile, followed and
%# follow_action on a user's page; plus what layout.tpl expects.
% rebase('layout.tpl', title=title)
<h2>{{ title }}</h2>
% if user and kind == "user":
<div class="followstatus">
  % if user['_id'] == profile['_id']:
  This is you!
  % else:
  <form class="inline" method="post" action="{{ follow_action }}">
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    % if followed:
    You are currently following this user.
    <button type="submit" class="unfollow">Unfollow user</button>
    % else:
    You are not yet following this user.
    <button type="submit" class="follow">Follow user</button>
    % end
  </form>
  % end
</div>
% elif user and kind == "home":
<div class="twitbox">
  <form action="/add_message" method="post">
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    <h3><label for="text">What's on your mind {{ user['username'] }}?</label></h3>
    <div class="share">
      <input type="text" id="text" name="text" maxlength="1000" required>
      <button type="submit">Share</button>
    </div>
  </form>
</div>
% end
<ul class="messages">
% for message in messages:
  % include('_message.tpl', message=message)
% end
% if not messages:
  <li><em>There's no message so far.</em></li>
% end
</ul>
% if older:
<nav class="paging" aria-label="Pages">
  <a href="{{ older }}" rel="next">Older messages &rarr;</a>
</nav>
% end
