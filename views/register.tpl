%# The sign-up form. Expects: error, username, email; plus what layout.tpl
%# expects.
% rebase('layout.tpl', title='Sign Up')
<h2>Sign Up</h2>
% include('_error.tpl', error=error)
<form action="/register" method="post" class="account">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  <label for="username">Username</label>
  <input type="text" id="username" name="username" value="{{ username }}"
         autocomplete="username">
  <label for="email">E-Mail</label>
  <input type="email" id="email" name="email" value="{{ email }}"
         autocomplete="email">
  <label for="password">Password</label>
  <input type="password" id="password" name="password"
         autocomplete="new-password">
  <label for="password2">Password <small>(repeat)</small></label>
  <input type="password" id="password2" name="password2"
         autocomplete="new-password">
  <div class="actions"><button type="submit">Sign Up</button></div>
</form>
