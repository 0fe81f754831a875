%# The sign-in form. Expects: error, username; plus what layout.tpl expects.
% rebase('layout.tpl', title='Sign In')
<h2>Sign In</h2>
% include('_error.tpl', error=error)
<form action="/login" method="post" class="account">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  <label for="username">Username</label>
  <input type="text" id="username" name="username" value="{{ username }}"
         autocomplete="username" required>
  <label for="password">Password</label>
  <input type="password" id="password" name="password"
         autocomplete="current-password" required>
  <div class="actions"><button type="submit">Sign In</button></div>
</form>
