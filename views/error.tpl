%# An error page. Expects: status, message; plus what layout.tpl expects.
% rebase('layout.tpl', title='Error %d' % status)
<h2>{{ 'Not found' if status == 404 else 'Sorry' }}</h2>
<p class="error-page">{{ message }}</p>
<p><a href="/public">Back to the public timeline</a></p>
