%# One message in a timeline. Expects: message, user_url, avatar_url,
%# format_date.
<li>
  <img src="{{ avatar_url(message['email_hash']) }}" width="48" height="48"
       alt="Avatar of {{ message['username'] }}">
  <p>
    <strong><a href="{{ user_url(message['username']) }}">{{ message['username'] }}</a></strong>
    {{ message['text'] }}
    <small>&mdash; {{ format_date(message['pub_date']) }}</small>
  </p>
</li>
